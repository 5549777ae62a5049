/* PROT_NONE: a write(2) from such a page gives EFAULT; after mprotect RW the
 * page is usable; after mprotect PROT_NONE again a read kills the program
 * with SIGSEGV (139 in a shell). Exit 1-3 if a step goes otherwise. */
        .globl  _start
        .text
_start: mov     $9, %eax                /* mmap(0, 4096, PROT_NONE, PRIVATE|ANON) */
        xor     %edi, %edi
        mov     $4096, %esi
        xor     %edx, %edx
        mov     $0x22, %r10d
        mov     $-1, %r8
        xor     %r9d, %r9d
        syscall
        mov     %rax, %r12
        mov     $1, %eax                /* write(1, page, 1): EFAULT */
        mov     $1, %edi
        mov     %r12, %rsi
        mov     $1, %edx
        syscall
        mov     $1, %edi
        cmp     $-14, %rax
        jne     fail
        mov     $10, %eax               /* mprotect(page, 4096, RW) */
        mov     %r12, %rdi
        mov     $4096, %esi
        mov     $3, %edx
        syscall
        mov     $2, %edi
        test    %rax, %rax
        jnz     fail
        movq    $7, (%r12)
        mov     $10, %eax               /* mprotect(page, 4096, PROT_NONE) */
        mov     %r12, %rdi
        mov     $4096, %esi
        xor     %edx, %edx
        syscall
        mov     $3, %edi
        test    %rax, %rax
        jnz     fail
        mov     (%r12), %rdi            /* faults */
fail:   mov     $231, %eax
        syscall
