/* timer_irq.S: COUNT virtual-timer interrupts (PPI 27) through the in-kernel
 * GICv3, each reported to the recorder (offset 0: the count so far), waiting
 * with wfi between them; then PSCI SYSTEM_OFF.
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
        mov     w0, #27
        bl      gic_enable_ppi
        bl      arm_timer
        msr     daifclr, #2             /* IRQs on */
1:      wfi
        ldr     x0, irq_count
        cmp     x0, #COUNT
        b.lo    1b
        msr     daifset, #2
        psci_call PSCI_SYSTEM_OFF
        b       .

arm_timer:
        ldr     x2, =PERIOD
        msr     cntv_tval_el0, x2
        mov     x2, #1                  /* ENABLE, not masked */
        msr     cntv_ctl_el0, x2
        isb
        ret

/* the IRQ hook: report, then re-arm (or stop) the timer */
irq_hook:
        mov     x7, x30
        ldr     x1, irq_count
        add     x1, x1, #1
        ldr     x2, =RECORDER
        str     x1, [x2]                /* the count, including this one */
        cmp     x1, #COUNT
        b.hs    2f
        bl      arm_timer
        ret     x7
2:      msr     cntv_ctl_el0, xzr
        isb
        ret     x7
        .ltorg

        .include "gic.inc"             /* after _start: the image starts at _start */
