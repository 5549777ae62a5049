/*
 * irq_priority.S - the interrupt window, the TPR and the ISR, at CPL0.
 *
 * 1. With interrupts off the guest sends itself fixed vector 0x45 through
 *    the ICR and reports how many it took (0): KVM cannot take it yet, so
 *    the CPU asks for an interrupt window.  sti opens it and the guest
 *    waits (at most 1000 loops) for the count to become 1.
 * 2. With TPR 0x40 (blocking vectors 0x40-0x4F) it sends 0x45 again and
 *    reports IRR word 2 (bit 5: 0x45 pending), the PPR (0x40) and the
 *    count (still 1); the handler reports ISR word 2 and the PPR it sees
 *    (0x45's class, 0x40) before its EOI.  TPR 0 lets it in: count 2.
 * Reports go to port 0xE0 in that order; then the guest halts with
 * interrupts off.
 */
        .set    VECTOR, 0x45
        .set    APIC_TPR, 0x80
        .set    APIC_PPR, 0xA0
        .set    APIC_ISR2, 0x120
        .set    APIC_IRR2, 0x220
        .text
        .globl  _start
_start:
        SET_GATE VECTOR, handler
        mov     $APIC, %ebx
        movl    $SVR_ENABLE, APIC_SVR(%rbx)
        /* 1: the window */
        movl    $(ICR_SELF | ICR_ASSERT | VECTOR), APIC_ICR_LOW(%rbx)
        mov     count(%rip), %rax
        out     %eax, $REPORT_PORT
        sti
        mov     $1000, %ecx                     /* a bounded wait for it */
2:      cmpq    $0, count(%rip)
        jne     3f
        loop    2b
3:      cli
        mov     count(%rip), %rax
        out     %eax, $REPORT_PORT
        /* 2: the TPR */
        movl    $0x40, APIC_TPR(%rbx)
        sti
        movl    $(ICR_SELF | ICR_ASSERT | VECTOR), APIC_ICR_LOW(%rbx)
        movl    APIC_IRR2(%rbx), %eax
        out     %eax, $REPORT_PORT
        movl    APIC_PPR(%rbx), %eax
        out     %eax, $REPORT_PORT
        mov     count(%rip), %rax
        out     %eax, $REPORT_PORT
        movl    $0, APIC_TPR(%rbx)
        cli
        mov     count(%rip), %rax
        out     %eax, $REPORT_PORT
        hlt

handler:
        push    %rax
        incq    count(%rip)
        cmpq    $2, count(%rip)
        jne     1f
        movl    APIC_ISR2(%rbx), %eax
        out     %eax, $REPORT_PORT
        movl    APIC_PPR(%rbx), %eax
        out     %eax, $REPORT_PORT
1:      movl    $0, APIC_EOI(%rbx)
        pop     %rax
        iretq

        .balign 8
count:  .quad   0
