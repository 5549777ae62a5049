/* regs.S: set x0-x30 (but x30 last), v0-v31, fpsr, fpcr, sp_el0, tpidr_el0
 * to known values, then write 1 to the recorder and stop at `b .`.  The
 * host reads them through the thread context.
 */
        .include "common.inc"
        .globl  _start
_start:
        enable_fp 0
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        mov     x1, #\n
        movk    x1, #0xabcd, lsl #48
        dup     v\n\().2d, x1
        mov     v\n\().d[1], x1
        add     v\n\().16b, v\n\().16b, v\n\().16b
        .endr
        ldr     x0, =0x08000000
        msr     fpsr, x0                /* QC */
        ldr     x0, =0x00c00000
        msr     fpcr, x0                /* RMode = towards zero */
        ldr     x0, =0x1234567890
        msr     tpidr_el0, x0
        msr     sp_el0, x0
        .irp    n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29
        mov     x\n, #(\n * 0x101)
        .endr
        mov     x30, #0x7777
        ldr     x0, =RECORDER
        mov     x1, #1
        str     x1, [x0]
        mov     x1, #(1 * 0x101)
        mov     x0, #0x4242
        b       .
        .ltorg
