/* The interrupted code's SSE state survives a signal handler that uses
 * SSE: xmm0 and MXCSR are set, SIGUSR1 is sent to itself, the handler
 * clobbers both and returns through rt_sigreturn. Exit 0 if both are back,
 * 1 if xmm0 changed, 2 if MXCSR changed, 3 if the handler did not run. */
        .globl  _start
        .text
_start: movabs  $0x1122334455667788, %rax
        movq    %rax, %xmm0
        movl    $0x3f80, mxcsr(%rip)        /* round toward zero, masked */
        ldmxcsr mxcsr(%rip)
        mov     $13, %eax                   /* rt_sigaction(SIGUSR1, &act, 0, 8) */
        mov     $10, %edi
        lea     act(%rip), %rsi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        mov     $39, %eax                   /* getpid */
        syscall
        mov     %rax, %rdi
        mov     $62, %eax                   /* kill(pid, SIGUSR1) */
        mov     $10, %esi
        syscall
        mov     $3, %edi
        cmpb    $1, ran(%rip)
        jne     done
        movq    %xmm0, %rax
        movabs  $0x1122334455667788, %rcx
        mov     $1, %edi
        cmp     %rcx, %rax
        jne     done
        stmxcsr check(%rip)
        mov     $2, %edi
        cmpl    $0x3f80, check(%rip)
        jne     done
        xor     %edi, %edi
done:   mov     $231, %eax
        syscall

handler:
        movb    $1, ran(%rip)
        pxor    %xmm0, %xmm0
        movl    $0x1f80, tmp(%rip)
        ldmxcsr tmp(%rip)
        ret

restorer:
        mov     $15, %eax                   /* rt_sigreturn */
        syscall

        .data
        .align  8
act:    .quad   handler
        .quad   0x04000000                  /* SA_RESTORER */
        .quad   restorer
        .quad   0                           /* mask */
mxcsr:  .long   0
check:  .long   0
tmp:    .long   0
ran:    .byte   0
