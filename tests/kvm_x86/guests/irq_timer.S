/*
 * irq_timer.S - periodic APIC timer interrupts and an NMI, counted by a
 * CPL3 loop.
 *
 * CPL0 installs the gates (timer vector 0x40, NMI, #GP) and drops to CPL3
 * with IF set.  CPL3 enables the APIC, programs the timer (DIVIDE,
 * periodic, INITIAL) and reports the current count read right after the
 * start on port 0xE4.  The CPL0 handler counts; from the N_TICKS-th on it
 * stops the timer (initial count 0) before its EOI.  (Guest time is host
 * time in KVM_RUN: if the host holds the vCPU back for a period, two
 * expiries merge in the IRR, and one may already wait when the timer is
 * stopped; the count can then end at N_TICKS + 1.)  CPL3 then sends itself an
 * NMI through the ICR, waits for the NMI handler, and reports the timer
 * count and the NMI count on port 0xE0; its hlt faults (#GP) into a CPL0
 * halt with interrupts off, which ends the run.
 * Symbols: N_TICKS, INITIAL, DIVIDE.
 */
        .set    TIMER_VECTOR, 0x40
        .text
        .globl  _start
_start:
        SET_GATE TIMER_VECTOR, timer_handler
        SET_GATE 2, nmi_handler
        SET_GATE 13, gp_handler
        ENTER_RING3_IF user_main

/* --- CPL0: kept short, every register preserved ------------------------ */
timer_handler:
        push    %rax
        incq    ticks(%rip)
        mov     $APIC, %eax
        cmpq    $N_TICKS, ticks(%rip)
        jb      1f
        movl    $0, APIC_INITIAL(%rax)          /* enough: stop */
1:      movl    $0, APIC_EOI(%rax)
        pop     %rax
        iretq

nmi_handler:
        incq    nmis(%rip)
        iretq

gp_handler:
        cli
99:     hlt
        jmp     99b

/* --- CPL3 ----------------------------------------------------------------- */
user_main:
        mov     $APIC, %ebx
        movl    $SVR_ENABLE, APIC_SVR(%rbx)
        movl    $DIVIDE, APIC_DIVIDE(%rbx)
        movl    $(TIMER_VECTOR | TIMER_PERIODIC), APIC_LVT_TIMER(%rbx)
        movl    $INITIAL, APIC_INITIAL(%rbx)
        movl    APIC_CURRENT(%rbx), %eax
        out     %eax, $(REPORT_PORT + 4)
1:      cmpq    $N_TICKS, ticks(%rip)
        jb      1b
        movl    $(ICR_SELF | ICR_ASSERT | ICR_NMI), APIC_ICR_LOW(%rbx)
2:      cmpq    $1, nmis(%rip)
        jb      2b
        mov     ticks(%rip), %rax
        out     %eax, $REPORT_PORT
        mov     nmis(%rip), %rax
        out     %eax, $REPORT_PORT
        hlt                                     /* #GP: the end */

        .balign 8
ticks:  .quad   0
nmis:   .quad   0
