/*
 * irq_halt.S - hlt waits for the APIC timer, at CPL0.
 *
 * Enables the APIC, sets the timer to one-shot (vector 0x40, divide by 1),
 * then N_WAKES times: arm it with INITIAL counts, sti; hlt (the interrupt
 * ends the hlt), cli.  The handler counts.  Reports the count on port 0xE0
 * and halts with interrupts off, which ends the run.
 * Symbols: N_WAKES, INITIAL.
 */
        .set    TIMER_VECTOR, 0x40
        .text
        .globl  _start
_start:
        SET_GATE TIMER_VECTOR, timer_handler
        mov     $APIC, %ebx
        movl    $SVR_ENABLE, APIC_SVR(%rbx)
        movl    $0xB, APIC_DIVIDE(%rbx)         /* divide by 1 */
        movl    $TIMER_VECTOR, APIC_LVT_TIMER(%rbx)
1:      movl    $INITIAL, APIC_INITIAL(%rbx)
        sti
        hlt
        cli
        cmpq    $N_WAKES, wakes(%rip)
        jb      1b
        mov     wakes(%rip), %rax
        out     %eax, $REPORT_PORT
        hlt

timer_handler:
        incq    wakes(%rip)
        APIC_EOI_KEEP_REGS
        iretq

        .balign 8
wakes:  .quad   0
