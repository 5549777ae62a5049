/* openat(AT_FDCWD, "created.txt", O_CREAT|O_WRONLY, 0x10000000644): Linux keeps
 * only the mode's permission bits. Exit 0 on success, else the errno. */
        .globl _start
        .text
_start:
        mov     $257, %eax
        mov     $-100, %rdi
        lea     path(%rip), %rsi
        mov     $0101, %rdx
        movabs  $0x10000000644, %r10
        syscall
        xor     %edi, %edi
        test    %rax, %rax
        jns     1f
        neg     %rax
        mov     %rax, %rdi
1:      mov     $231, %eax
        syscall
        .data
path:   .asciz "created.txt"
