/* count.S: sums 1..20, writing each partial sum to the recorder (offset 0),
 * then the final count of steps to offset 8, and powers off. */
        .include "common.inc"
        .globl  _start
_start:
        ldr     r4, =RECORDER
        mov     r5, #0                  /* sum */
        mov     r6, #1                  /* i */
1:      add     r5, r5, r6
        str     r5, [r4]
        add     r6, r6, #1
        cmp     r6, #20
        ble     1b
        sub     r6, r6, #1
        str     r6, [r4, #8]
        psci_off
        b       .
        .ltorg
