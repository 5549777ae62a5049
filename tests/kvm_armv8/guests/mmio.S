/* mmio.S: MMIO writes and reads of 1, 2, 4 and 8 bytes, then PSCI SYSTEM_OFF.
 * Each value read is written back, 8 bytes wide, at offset + 0x100, so the
 * host sees what the guest got.
 */
        .include "common.inc"
        .globl  _start
_start:
        ldr     x1, =RECORDER
        mov     w2, #0x11
        strb    w2, [x1, #0x0]
        mov     w2, #0x2233
        strh    w2, [x1, #0x8]
        ldr     w2, =0x44556677
        str     w2, [x1, #0x10]
        ldr     x2, =0x8899aabbccddeeff
        str     x2, [x1, #0x18]
        ldrb    w3, [x1, #0x20]
        str     x3, [x1, #0x120]
        ldrh    w3, [x1, #0x28]
        str     x3, [x1, #0x128]
        ldr     w3, [x1, #0x30]
        str     x3, [x1, #0x130]
        ldr     x3, [x1, #0x38]
        str     x3, [x1, #0x138]
        psci_call PSCI_SYSTEM_OFF
        b       .
        .ltorg
