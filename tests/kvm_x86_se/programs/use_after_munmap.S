/* mmap one page, write to it, munmap it, then read it: Linux kills the
 * program with SIGSEGV (status 139 in a shell). */
        .globl  _start
        .text
_start: mov     $9, %eax
        xor     %edi, %edi
        mov     $4096, %esi
        mov     $3, %edx
        mov     $0x22, %r10d
        mov     $-1, %r8
        xor     %r9d, %r9d
        syscall
        mov     %rax, %r12
        movq    $42, (%r12)
        mov     $11, %eax
        mov     %r12, %rdi
        mov     $4096, %esi
        syscall
        mov     (%r12), %rdi            /* faults */
        mov     $231, %eax
        syscall
