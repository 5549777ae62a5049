/*
 * irq_storm.S - many timer interrupts into a CPL3 loop, for drain tests.
 *
 * CPL3 enables the APIC and arms the one-shot timer (vector 0x40, divide
 * by 1, INITIAL counts); each handler run counts and re-arms it until
 * N_TICKS have arrived, so exactly N_TICKS timer interrupts happen and
 * none can merge with another.  Vector 0x41 (sent by the test) is counted
 * apart.  When CPL3 sees N_TICKS its hlt faults (#GP) into CPL0, where,
 * with interrupts off, so that nothing arrives after the report, the guest
 * reports both counts on port 0xE0 and halts.
 * The counts live at 0x90000 (timer) and 0x90008 (vector 0x41), RAM the
 * x86 layout leaves free, so a test can read them at any drain.
 * Symbols: N_TICKS, INITIAL.
 */
        .set    TIMER_VECTOR, 0x40
        .set    TICKS_AT, 0x90000               /* the counts, where a test reads them */
        .set    EXTRA_AT, 0x90008
        .set    EXTRA_VECTOR, 0x41
        .text
        .globl  _start
_start:
        SET_GATE TIMER_VECTOR, timer_handler
        SET_GATE EXTRA_VECTOR, extra_handler
        SET_GATE 13, gp_handler
        ENTER_RING3_IF user_main

timer_handler:
        push    %rax
        incq    TICKS_AT
        mov     $APIC, %eax
        cmpq    $N_TICKS, TICKS_AT
        jae     1f
        movl    $INITIAL, APIC_INITIAL(%rax)    /* re-arm */
1:      movl    $0, APIC_EOI(%rax)
        pop     %rax
        iretq

extra_handler:
        incq    EXTRA_AT
        APIC_EOI_KEEP_REGS
        iretq

/* CPL3's hlt ends here, with interrupts off: the counts reported are final. */
gp_handler:
        mov     TICKS_AT, %rax
        out     %eax, $REPORT_PORT
        mov     EXTRA_AT, %rax
        out     %eax, $REPORT_PORT
99:     hlt
        jmp     99b

user_main:
        mov     $APIC, %ebx
        movl    $SVR_ENABLE, APIC_SVR(%rbx)
        movl    $0xB, APIC_DIVIDE(%rbx)
        movl    $TIMER_VECTOR, APIC_LVT_TIMER(%rbx)
        movl    $INITIAL, APIC_INITIAL(%rbx)
        xor     %ecx, %ecx
1:      add     $1, %rcx
        cmpq    $N_TICKS, TICKS_AT
        jb      1b
        hlt                                     /* #GP: report and halt */

