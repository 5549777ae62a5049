/* statx(AT_FDCWD, "data.txt", 0, STATX_BASIC_STATS, buf), then write the
 * first 144 bytes of struct statx to stdout; exit with -rax on failure. */
        .globl  _start
        .text
_start: mov     $332, %eax
        mov     $-100, %rdi
        lea     path(%rip), %rsi
        xor     %edx, %edx
        mov     $0x7ff, %r10d
        lea     buf(%rip), %r8
        syscall
        test    %rax, %rax
        js      fail
        mov     $1, %eax
        mov     $1, %edi
        lea     buf(%rip), %rsi
        mov     $144, %edx
        syscall
        xor     %eax, %eax
fail:   neg     %rax
        mov     %rax, %rdi
        mov     $231, %eax
        syscall
        .data
path:   .asciz  "data.txt"
        .bss
        .align  8
buf:    .space  256
