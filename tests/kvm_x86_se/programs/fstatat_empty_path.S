/* newfstatat(AT_FDCWD, "", buf, AT_EMPTY_PATH): Linux stats the cwd. Exit with -rax. */
        .globl _start
        .text
_start:
        mov     $262, %eax
        mov     $-100, %rdi
        lea     empty(%rip), %rsi
        lea     buf(%rip), %rdx
        mov     $0x1000, %r10
        syscall
        neg     %rax
        mov     %rax, %rdi
        mov     $231, %eax
        syscall
        .data
empty:  .byte 0
        .bss
buf:    .space 256
