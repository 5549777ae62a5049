/*
 * apic_common.S - constants of the local APIC model (kvm_x86/apic.py),
 * included by the irq*, apic* and nmi* test guests after ring3.inc.
 */
        .set    APIC,           0xFEE00000
        .set    APIC_ID,        0x20
        .set    APIC_EOI,       0xB0
        .set    APIC_SVR,       0xF0
        .set    APIC_ESR,       0x280
        .set    APIC_ICR_LOW,   0x300
        .set    APIC_ICR_HIGH,  0x310
        .set    APIC_LVT_TIMER, 0x320
        .set    APIC_INITIAL,   0x380
        .set    APIC_CURRENT,   0x390
        .set    APIC_DIVIDE,    0x3E0
        .set    SVR_ENABLE,     0x1FF           /* enabled, spurious vector 0xFF */
        .set    TIMER_PERIODIC, 1 << 17
        .set    ICR_SELF,       1 << 18
        .set    ICR_ASSERT,     1 << 14
        .set    ICR_NMI,        4 << 8
        .set    ICR_INIT,       5 << 8
        .set    ICR_STARTUP,    6 << 8
        .set    REPORT_PORT,    0xE0

/* iretq to \target at CPL3 with interrupts on (RFLAGS.IF) and the user
 * stack; an interrupt there switches to TSS.RSP0.  Clobbers rax. */
.macro ENTER_RING3_IF target
        pushq   $USER_DS
        pushq   $USER_STACK
        pushq   $0x202
        pushq   $USER_CS
        lea     \target(%rip), %rax
        pushq   %rax
        iretq
.endm

/* EOI to the local APIC, from a handler: touches no register. */
.macro APIC_EOI_KEEP_REGS
        push    %rax
        mov     $APIC, %eax
        movl    $0, APIC_EOI(%rax)
        pop     %rax
.endm
