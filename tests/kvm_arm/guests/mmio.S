/* mmio.S: MMIO writes and reads of 1, 2 and 4 bytes to the recorder; each
 * value read is written back as a word at its offset + 0x100. */
        .include "common.inc"
        .globl  _start
_start:
        ldr     r4, =RECORDER
        mov     r0, #0x11
        strb    r0, [r4, #0x0]
        ldr     r0, =0x2233
        strh    r0, [r4, #0x8]
        ldr     r0, =0x44556677
        str     r0, [r4, #0x10]
        ldrb    r1, [r4, #0x20]
        ldrh    r2, [r4, #0x28]
        ldr     r3, [r4, #0x30]
        str     r1, [r4, #0x120]
        str     r2, [r4, #0x128]
        str     r3, [r4, #0x130]
        psci_off
        b       .
        .ltorg
