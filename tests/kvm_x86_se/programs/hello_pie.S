/* A static PIE (ET_DYN, no PT_INTERP): writes "static pie\n" through a
 * RIP-relative address, so it works wherever it is placed. */
        .globl  _start
        .text
_start: mov     $1, %eax
        mov     $1, %edi
        lea     message(%rip), %rsi
        mov     $11, %edx
        syscall
        xor     %edi, %edi
        mov     $231, %eax
        syscall
        .section .rodata
message: .ascii "static pie\n"
