/* timer_irq.S: COUNT virtual-timer interrupts (PPI 27) through the in-kernel
 * GICv3, each reported to the recorder (offset 0: the count so far), waiting
 * with wfi between them; then PSCI SYSTEM_OFF.
 *
 * The timer through CP15: CNTV_TVAL is p15, 0, Rt, c14, c3, 0 and CNTV_CTL
 * p15, 0, Rt, c14, c3, 1.  IRQs stay masked but around wfi (a pending
 * interrupt wakes wfi all the same), so none is taken between the count's
 * check and the wfi.
 */
        .include "common.inc"
        .ifndef COUNT
        .equ    COUNT, 5
        .endif
        .ifndef PERIOD
        .equ    PERIOD, 20000           /* counter ticks between interrupts */
        .endif
        .globl  _start
_start:
        bl      gic_init_dist
        bl      gic_init_cpu
        mov     r0, #27
        bl      gic_enable_ppi
        bl      arm_timer
        ldr     r4, =irq_count          /* vCPU 0's */
1:      ldr     r0, [r4]
        cmp     r0, #COUNT
        bhs     2f
        wfi
        cpsie   i                       /* take it */
        cpsid   i
        b       1b
2:      psci_off
        b       .

arm_timer:
        ldr     r2, =PERIOD
        mcr     p15, 0, r2, c14, c3, 0  /* CNTV_TVAL */
        mov     r2, #1                  /* ENABLE, not masked */
        mcr     p15, 0, r2, c14, c3, 1  /* CNTV_CTL */
        isb
        bx      lr

/* the IRQ hook: report, then re-arm (or stop) the timer */
irq_hook:
        push    {r4, lr}
        ldr     r1, =irq_count
        ldr     r1, [r1]
        add     r1, r1, #1
        ldr     r2, =RECORDER
        str     r1, [r2]                /* the count, including this one */
        cmp     r1, #COUNT
        bhs     3f
        bl      arm_timer
        pop     {r4, pc}
3:      mov     r2, #0
        mcr     p15, 0, r2, c14, c3, 1  /* CNTV_CTL: off */
        isb
        pop     {r4, pc}
        .ltorg

        .include "gic.inc"             /* after _start: the image starts at _start */
