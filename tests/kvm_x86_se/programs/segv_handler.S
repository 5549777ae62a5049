/* segv_handler.S: a SIGSEGV handler (SA_SIGINFO|SA_RESTORER) sees the fault
 * address, moves the saved RIP past the faulting load and returns through
 * rt_sigreturn; the program checks a callee-saved register survived and
 * exits 42. */
        .globl  _start
        .text
_start:
        mov     $13, %eax               /* rt_sigaction(SIGSEGV, &act, 0, 8) */
        mov     $11, %edi
        lea     act(%rip), %rsi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        test    %rax, %rax
        jnz     fail
        mov     $0x1234, %r12
fault:
        mov     0x10, %rax              /* faults: address 0x10 */
after:
        cmp     $0x1234, %r12
        jne     fail
        mov     $1, %eax
        mov     $1, %edi
        lea     resumed(%rip), %rsi
        mov     $8, %edx
        syscall
        mov     $60, %eax
        mov     $42, %edi
        syscall
fail:
        mov     $60, %eax
        mov     $1, %edi
        syscall

handler:
        cmp     $11, %edi
        jne     fail
        cmpq    $0x10, 16(%rsi)         /* siginfo.si_addr */
        jne     fail
        mov     %rdx, %rbx
        mov     $1, %eax
        mov     $1, %edi
        lea     caught(%rip), %rsi
        mov     $15, %edx
        syscall
        lea     after(%rip), %rax
        mov     %rax, 168(%rbx)         /* uc_mcontext.rip */
        ret

restorer:
        mov     $15, %eax               /* rt_sigreturn */
        syscall

        .data
act:    .quad   handler, 0x04000004, restorer, 0
caught: .ascii  "caught SIGSEGV\n"
resumed: .ascii "resumed\n"
