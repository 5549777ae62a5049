/*
 * debugregs.S - debug registers both ways, at CPL0 (mov to and from DRn
 * run in KVM's emulator).
 *
 * Phase 1: store DR0-DR3, DR6, DR7 (what the host set) to seen1, then load
 *          DR0-DR3 and DR7 from new_values; hlt.
 * Phase 2: (after the host wakes the thread) store them again to seen2; hlt.
 *
 * Tables at fixed offsets from 0x100000: new_values +0x200 (dr0-dr3, dr7),
 * seen1 +0x300 and seen2 +0x340 (dr0-dr3, dr6, dr7).  The breakpoints set
 * point at addresses this guest never touches.
 */
        .text
        .globl  _start
_start:
        lea     seen1(%rip), %rdi
        call    store_all
        mov     new_values(%rip), %rax
        mov     %rax, %dr0
        mov     new_values+8(%rip), %rax
        mov     %rax, %dr1
        mov     new_values+16(%rip), %rax
        mov     %rax, %dr2
        mov     new_values+24(%rip), %rax
        mov     %rax, %dr3
        mov     new_values+32(%rip), %rax
        mov     %rax, %dr7
        hlt
        lea     seen2(%rip), %rdi
        call    store_all
1:      hlt
        jmp     1b

store_all:
        mov     %dr0, %rax
        mov     %rax, (%rdi)
        mov     %dr1, %rax
        mov     %rax, 8(%rdi)
        mov     %dr2, %rax
        mov     %rax, 16(%rdi)
        mov     %dr3, %rax
        mov     %rax, 24(%rdi)
        mov     %dr6, %rax
        mov     %rax, 32(%rdi)
        mov     %dr7, %rax
        mov     %rax, 40(%rdi)
        ret

        .org    0x200
new_values:
        .quad   0x0000000000DEAD00      /* DR0 */
        .quad   0x00007FFFFFFF0000      /* DR1 */
        .quad   0xFFFF800000000008      /* DR2 */
        .quad   0x0000000000BEEF10      /* DR3 */
        .quad   0x0000000000D0040A      /* DR7: G0 execute at DR0, G1 4-byte write at DR1, bit 10 */

        .org    0x300
seen1:  .fill   6, 8, 0xEE
        .org    0x340
seen2:  .fill   6, 8, 0xEE
