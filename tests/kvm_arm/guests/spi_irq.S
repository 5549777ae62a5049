/* spi_irq.S: interrupts raised by the host with KVM_IRQ_LINE, taken through
 * the in-kernel GICv3 (one vCPU).
 *
 * Enable SPI 40 routed to vCPU 0.  Then COUNT times: write the round number
 * to the recorder's offset 0 ("raise it", the host drives the line high);
 * the handler writes the interrupt id to offset 0x100 ("taken", the host
 * drives it low).  Finally the count to 0x200, PSCI SYSTEM_OFF.  IRQs stay
 * masked but around wfi.
 */
        .include "common.inc"
        .ifndef COUNT
        .equ    COUNT, 3
        .endif
        .globl  _start
_start:
        bl      gic_init_dist
        bl      gic_init_cpu
        mov     r0, #40
        bl      gic_enable_spi
        ldr     r7, =RECORDER
        ldr     r8, =irq_count          /* vCPU 0's */
        mov     r9, #0
1:      add     r9, r9, #1
        str     r9, [r7]                /* ask for interrupt number r9 */
2:      ldr     r0, [r8]
        cmp     r0, r9
        bhs     3f
        wfi
        cpsie   i                       /* take it */
        cpsid   i
        b       2b
3:      cmp     r9, #COUNT
        blo     1b
        ldr     r0, [r8]
        str     r0, [r7, #0x200]
        psci_off
        b       .

irq_hook:
        ldr     r1, =RECORDER
        str     r0, [r1, #0x100]
        bx      lr
        .ltorg

        .include "gic.inc"             /* after _start: the image starts at _start */
