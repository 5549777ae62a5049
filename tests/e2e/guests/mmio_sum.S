/*
 * mmio_sum.S - eight 32-bit MMIO reads of 0xD0000000 summed into rsi; the
 * sum goes out on port 0xE1, then the CPU halts.  Against a timing-mode
 * device each read leaves the vCPU waiting until the device answers.
 */
        .code64
        .globl  _start
_start:
        mov     $0xD0000000, %rbx
        xor     %esi, %esi
        mov     $8, %ecx
1:      mov     (%rbx), %eax
        add     %rax, %rsi
        dec     %ecx
        jnz     1b
        mov     %esi, %eax
        out     %eax, $0xE1
        cli
        hlt
