/* fpe_handler.S: divide by zero; the SIGFPE handler checks si_code
 * FPE_INTDIV, writes a message and exits 42 from the handler. */
        .globl  _start
        .text
_start:
        mov     $13, %eax               /* rt_sigaction(SIGFPE, &act, 0, 8) */
        mov     $8, %edi
        lea     act(%rip), %rsi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        test    %rax, %rax
        jnz     fail
        mov     $7, %eax
        xor     %edx, %edx
        xor     %ecx, %ecx
        div     %ecx
fail:
        mov     $60, %eax
        mov     $1, %edi
        syscall

handler:
        cmp     $8, %edi
        jne     fail
        cmpl    $1, 8(%rsi)             /* siginfo.si_code == FPE_INTDIV */
        jne     fail
        mov     $1, %eax
        mov     $1, %edi
        lea     caught(%rip), %rsi
        mov     $14, %edx
        syscall
        mov     $60, %eax
        mov     $42, %edi
        syscall

restorer:
        mov     $15, %eax
        syscall

        .data
act:    .quad   handler, 0x04000004, restorer, 0
caught: .ascii  "caught SIGFPE\n"
