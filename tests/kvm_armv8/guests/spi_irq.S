/* spi_irq.S: interrupts raised by the host with KVM_IRQ_LINE, taken through
 * the in-kernel GICv3.  Every vCPU runs this; the vCPU numbered TARGET does
 * the work, the others wait with wfi.
 *
 * SPI (PPI undefined): enable SPI 40 routed to vCPU 0.  PPI defined: enable
 * PPI 20 in the target's redistributor.  Then COUNT times: write the round
 * number to the recorder's offset 0x8 * cpu ("raise it", the host drives the
 * line high); the handler writes the interrupt id to offset 0x100 ("taken",
 * the host drives it low).  Finally the count to 0x200, PSCI SYSTEM_OFF.
 * A vCPU that only waits says so first at 0x300 + 8 * cpu.
 */
        .include "common.inc"
        .ifndef COUNT
        .equ    COUNT, 3
        .endif
        .ifndef TARGET
        .equ    TARGET, 0
        .endif
        .globl  _start
_start:
        cpu_index 19, 20
        cbnz    x19, 1f
        bl      gic_init_dist
1:      bl      gic_init_cpu
        cmp     x19, #TARGET
        b.ne    idle
        .ifdef PPI
        mov     w0, #20
        bl      gic_enable_ppi
        .else
        mov     w0, #40
        bl      gic_enable_spi
        .endif
        msr     daifclr, #2
        ldr     x21, =RECORDER
        mov     x22, #0
2:      add     x22, x22, #1
        str     x22, [x21, x19, lsl #3] /* ask for interrupt number x22 */
3:      ldr     x0, irq_count + 8 * TARGET
        cmp     x0, x22
        b.lo    3b
        cmp     x22, #COUNT
        b.lo    2b
        ldr     x0, irq_count + 8 * TARGET
        str     x0, [x21, #0x200]
        psci_call PSCI_SYSTEM_OFF
idle:   ldr     x21, =RECORDER          /* "idle": the host may stop scheduling us */
        add     x21, x21, #0x300
        mov     x0, #1
        str     x0, [x21, x19, lsl #3]
1:      wfi
        b       1b

irq_hook:
        ldr     x1, =RECORDER
        str     x0, [x1, #0x100]
        ret
        .ltorg

        .include "gic.inc"             /* after _start: the image starts at _start */
