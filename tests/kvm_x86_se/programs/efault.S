/* efault.S: bad pointers must give -EFAULT: write(1, unmapped, 5),
   write(1, kernel address, 5), clock_gettime(CLOCK_REALTIME, read-only
   text); exit with status 0 if all three did, else the failing step.
   Linux gives the same, so the program runs natively as well. */
        .globl  _start
        .text
_start:
        mov     $1, %eax                /* write(1, 0x10, 5): unmapped */
        mov     $1, %edi
        mov     $0x10, %esi
        mov     $5, %edx
        syscall
        mov     $1, %r12d
        cmp     $-14, %rax
        jne     fail
        mov     $1, %eax                /* write(1, kernel half, 5) */
        mov     $1, %edi
        mov     $0xffffffff80000000, %rsi
        mov     $5, %edx
        syscall
        mov     $2, %r12d
        cmp     $-14, %rax
        jne     fail
        mov     $228, %eax              /* clock_gettime(0, read-only text) */
        xor     %edi, %edi
        lea     _start(%rip), %rsi
        syscall
        mov     $3, %r12d
        cmp     $-14, %rax
        jne     fail
        xor     %edi, %edi
        mov     $60, %eax
        syscall
fail:   mov     %r12d, %edi
        mov     $60, %eax
        syscall
