/*
 * irq_injected.S - shows which event a test injected through the vCPU
 * events.
 *
 * Installs handlers for #UD (vector 6) and vector 0x30 that report their
 * vector on port 0xE0; the #UD handler then halts, the 0x30 handler
 * returns.  The main code (CPL0, interrupts off) reports 0x10 (the test
 * stops there and injects), then 0x11, and halts.
 */
        .text
        .globl  _start
_start:
        SET_GATE 6, ud_handler
        SET_GATE 0x30, vector30_handler
        mov     $0x10, %eax
        out     %eax, $REPORT_PORT
        mov     $0x11, %eax
        out     %eax, $REPORT_PORT
        hlt

ud_handler:
        mov     $6, %eax
        out     %eax, $REPORT_PORT
        hlt

vector30_handler:
        push    %rax
        mov     $0x30, %eax
        out     %eax, $REPORT_PORT
        pop     %rax
        iretq
