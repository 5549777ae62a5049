/* regs.S: changes every register group in a known way, then stops with a
 * store to the recorder through SP_usr.
 *
 * The host sets SP_svc to RAM (two words are pushed and popped there) and
 * SP_usr to RECORDER + 0x100.  The guest adds 1 to every CP15 register the
 * test names (VBAR: 0x20; TTBR0/1: 0x100), 1 to the low word of D0-D31,
 * flips FPSCR's NZCV and each SPSR's NZCV, adds 1 to every LR and to
 * R8_fiq-R12_fiq and 4 to every SP but SP_hyp (SP_usr included), 1 to
 * R0-R12, then in SYS mode writes R0 to [SP_usr] (offset 0x104).  SPSR_svc
 * is changed first, before any mode switch.
 */
        .include "common.inc"
        .fpu    vfpv3
        .globl  _start

        .macro  cp15_inc crn, opc1, crm, opc2, amount=1
        mrc     p15, \opc1, r0, \crn, \crm, \opc2
        add     r0, r0, #\amount
        mcr     p15, \opc1, r0, \crn, \crm, \opc2
        .endm

        .macro  banked mode
        cps     #\mode
        add     sp, sp, #4
        add     lr, lr, #1
        mrs     r0, spsr
        eor     r0, r0, #0xF0000000
        msr     spsr_fsxc, r0
        .endm

_start:
        push    {r0, r1}
        mrs     r0, spsr                /* SPSR_svc first, before any mode switch */
        eor     r0, r0, #0xF0000000
        msr     spsr_fsxc, r0
        cp15_inc c13, 0, c0, 2          /* TPIDRURW */
        cp15_inc c13, 0, c0, 3          /* TPIDRURO */
        cp15_inc c13, 0, c0, 4          /* TPIDRPRW */
        cp15_inc c13, 0, c0, 1          /* CONTEXTIDR */
        cp15_inc c3, 0, c0, 0           /* DACR */
        cp15_inc c12, 0, c0, 0, 0x20    /* VBAR (bits 4:0 are RES0) */
        cp15_inc c10, 0, c2, 0          /* PRRR */
        cp15_inc c10, 0, c2, 1          /* NMRR */
        cp15_inc c6, 0, c0, 0           /* DFAR */
        cp15_inc c6, 0, c0, 2           /* IFAR */
        cp15_inc c5, 0, c0, 0           /* DFSR */
        cp15_inc c5, 0, c0, 1           /* IFSR */
        cp15_inc c2, 0, c0, 2           /* TTBCR */
        mrrc    p15, 0, r0, r1, c2      /* TTBR0: + 0x100 (address bits) */
        add     r0, r0, #0x100
        mcrr    p15, 0, r0, r1, c2
        mrrc    p15, 1, r0, r1, c2      /* TTBR1: + 0x100 */
        add     r0, r0, #0x100
        mcrr    p15, 1, r0, r1, c2
        /* VFP: CPACR cp10/cp11 full access, FPEXC.EN */
        mrc     p15, 0, r0, c1, c0, 2
        orr     r0, r0, #(0xF << 20)
        mcr     p15, 0, r0, c1, c0, 2
        isb
        mov     r0, #(1 << 30)
        vmsr    fpexc, r0
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        vmov    r0, r1, d\n
        add     r0, r0, #1
        vmov    d\n, r0, r1
        .endr
        vmrs    r0, fpscr
        eor     r0, r0, #0xF0000000
        vmsr    fpscr, r0
        banked  0x12                    /* IRQ */
        banked  0x17                    /* ABT */
        banked  0x1b                    /* UND */
        banked  0x11                    /* FIQ */
        .irp    n, 8,9,10,11,12
        add     r\n, r\n, #1
        .endr
        cps     #0x13                   /* SVC */
        pop     {r0, r1}
        add     sp, sp, #4
        add     lr, lr, #1
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12
        add     r\n, r\n, #1
        .endr
        cps     #0x1f                   /* SYS: the usr bank */
        add     sp, sp, #4
        add     lr, lr, #1
        str     r0, [sp]
        b       .
        .ltorg
