/* mremap: map 2 anonymous pages, write markers, grow to 64 pages with
 * MREMAP_MAYMOVE (a page is mapped right after, so it must move), check the
 * markers moved with the data, write the last page, shrink to 1 page in place,
 * then grow in place without MAYMOVE. Exit 0, or the failing step (1-7). */
        .globl  _start
        .text
_start: mov     $9, %eax                /* mmap(0, 3 pages, RW, PRIVATE|ANON) */
        xor     %edi, %edi
        mov     $3*4096, %esi
        mov     $3, %edx
        mov     $0x22, %r10d
        mov     $-1, %r8
        xor     %r9d, %r9d
        syscall
        mov     $1, %edi
        test    %rax, %rax
        js      fail
        mov     %rax, %r12              /* base */
        mov     $11, %eax               /* munmap(base + 2 pages, 1 page): a hole */
        lea     8192(%r12), %rdi
        mov     $4096, %esi
        syscall
        mov     $9, %eax                /* mmap a blocker page exactly there */
        lea     8192(%r12), %rdi
        mov     $4096, %esi
        mov     $3, %edx
        mov     $0x32, %r10d            /* PRIVATE|ANON|FIXED */
        mov     $-1, %r8
        xor     %r9d, %r9d
        syscall
        mov     $2, %edi
        cmp     %rax, %rdi
        je      fail
        movq    $0x1111, (%r12)
        movq    $0x2222, 4096(%r12)
        mov     $25, %eax               /* mremap(base, 2p, 64p, MAYMOVE) */
        mov     %r12, %rdi
        mov     $2*4096, %esi
        mov     $64*4096, %edx
        mov     $1, %r10d
        syscall
        mov     $3, %edi
        test    %rax, %rax
        js      fail
        mov     $4, %edi
        cmp     %rax, %r12
        je      fail                    /* it had to move */
        mov     %rax, %r13
        mov     $5, %edi
        cmpq    $0x1111, (%r13)
        jne     fail
        cmpq    $0x2222, 4096(%r13)
        jne     fail
        movq    $0x3333, 63*4096(%r13)  /* the new tail is mapped and writable */
        mov     $25, %eax               /* shrink to 1 page: stays */
        mov     %r13, %rdi
        mov     $64*4096, %esi
        mov     $4096, %edx
        xor     %r10d, %r10d
        syscall
        mov     $6, %edi
        cmp     %rax, %r13
        jne     fail
        mov     $25, %eax               /* grow back to 2 pages in place, no MAYMOVE */
        mov     %r13, %rdi
        mov     $4096, %esi
        mov     $2*4096, %edx
        xor     %r10d, %r10d
        syscall
        mov     $7, %edi
        cmp     %rax, %r13
        jne     fail
        cmpq    $0, 4096(%r13)          /* fresh zero page */
        jne     fail
        xor     %edi, %edi
fail:   mov     $231, %eax
        syscall
