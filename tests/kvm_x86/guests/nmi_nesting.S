/*
 * nmi_nesting.S - an NMI handler that reports how deeply it is nested.
 *
 * At CPL0 with interrupts off the guest installs its NMI gate, reports 0 on
 * port 0xE6 (ready: a test sends NMIs from now on) and spins until its NMI
 * handler has run N_NMIS times.  The handler raises a depth counter, reports it on
 * port 0xE0 (an exit: the test may stop and checkpoint here, inside the
 * handler, where NMIs are blocked until iretq), lowers it and returns.
 * A second NMI that arrives before the iretq must wait: the reported depth
 * is 1 each time, never 2.  At the end the count goes to port 0xE4.
 * Symbol: N_NMIS.
 */
        .text
        .globl  _start
_start:
        SET_GATE 2, nmi_handler
        xor     %eax, %eax
        out     %eax, $(REPORT_PORT + 6)
1:      cmpq    $N_NMIS, nmis(%rip)
        jb      1b
        mov     nmis(%rip), %rax
        out     %eax, $(REPORT_PORT + 4)
        hlt

nmi_handler:
        push    %rax
        incq    depth(%rip)
        mov     depth(%rip), %rax
        out     %eax, $REPORT_PORT
        decq    depth(%rip)
        incq    nmis(%rip)
        pop     %rax
        iretq

        .balign 8
depth:  .quad   0
nmis:   .quad   0
