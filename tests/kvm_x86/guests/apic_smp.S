/*
 * apic_smp.S - the boot CPU starts a second CPU with INIT, STARTUP,
 * STARTUP and waits in hlt for the IPI the second CPU sends it.
 *
 * Boot CPU (CPL0): enables its APIC, copies the start-up stub to
 * AP_START (a page below 1 MiB), sends INIT and then STARTUP twice to APIC
 * id 1 (the second STARTUP must be ignored), then sti; hlt until the IPI
 * handler (vector 0x41) has run.  Reports on port 0xE0: how often the
 * second CPU started, the APIC id it read, the IPIs taken; then halts.
 *
 * Second CPU: starts at AP_START in long mode (the model's STARTUP), jumps
 * to ap_main, takes its own stack, reads its APIC id, enables its APIC,
 * sends the fixed IPI 0x41 to APIC id 0, and halts with interrupts off.
 */
        .set    IPI_VECTOR, 0x41
        .set    AP_START, 0x20000               /* STARTUP vector 0x20 */
        .set    AP_STACK, 0x60000
        .text
        .globl  _start
_start:
        SET_GATE IPI_VECTOR, ipi_handler
        mov     $APIC, %ebx
        movl    $SVR_ENABLE, APIC_SVR(%rbx)
        lea     ap_stub(%rip), %rsi
        mov     $AP_START, %edi
        mov     $(ap_stub_end - ap_stub), %ecx
        rep movsb
        movl    $(1 << 24), APIC_ICR_HIGH(%rbx)
        movl    $(ICR_ASSERT | ICR_INIT), APIC_ICR_LOW(%rbx)
        movl    $(ICR_ASSERT | ICR_STARTUP | (AP_START >> 12)), APIC_ICR_LOW(%rbx)
        movl    $(ICR_ASSERT | ICR_STARTUP | (AP_START >> 12)), APIC_ICR_LOW(%rbx)
1:      sti
        hlt
        cli
        cmpq    $0, ipis(%rip)
        je      1b
        mov     ap_starts(%rip), %rax
        out     %eax, $REPORT_PORT
        mov     ap_id(%rip), %rax
        out     %eax, $REPORT_PORT
        mov     ipis(%rip), %rax
        out     %eax, $REPORT_PORT
        hlt

ipi_handler:
        incq    ipis(%rip)
        APIC_EOI_KEEP_REGS
        iretq

/* copied to AP_START: position independent */
ap_stub:
        movabs  $ap_main, %rax
        jmp     *%rax
ap_stub_end:

ap_main:
        mov     $AP_STACK, %rsp
        incq    ap_starts(%rip)
        mov     $APIC, %ebx
        movl    APIC_ID(%rbx), %eax
        shr     $24, %eax
        mov     %rax, ap_id(%rip)
        movl    $SVR_ENABLE, APIC_SVR(%rbx)
        movl    $0, APIC_ICR_HIGH(%rbx)
        movl    $(ICR_ASSERT | IPI_VECTOR), APIC_ICR_LOW(%rbx)
        cli
2:      hlt
        jmp     2b

        .balign 8
ap_starts: .quad 0
ap_id:     .quad 0
ipis:      .quad 0
