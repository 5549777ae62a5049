/* demo.S: the arm (AArch32) demo guest.
 *
 * Entered in SVC mode (A32) with the MMU off and A, I, F masked (r0 =
 * boot_x0).  Prints a greeting and its MPIDR's Aff0 through the PL011 at
 * 0x09000000 (polling FR.TXFF), sums 1..100, then powers the machine off
 * with PSCI SYSTEM_OFF (hvc #0, SMC32 calling convention).
 */
        .syntax unified
        .arm
        .equ    UART, 0x09000000
        .equ    UART_FR, 0x18
        .equ    FR_TXFF, (1 << 5)
        .equ    PSCI_SYSTEM_OFF, 0x84000008

        .text
        .globl  _start
_start:
        ldr     r9, =UART
        adr     r1, hello
        bl      puts
        mrc     p15, 0, r2, c0, c0, 5   /* MPIDR */
        and     r2, r2, #0xff
        add     r0, r2, #'0'
        bl      putc
        adr     r1, sum_text
        bl      puts
        mov     r4, #0
        mov     r3, #1
1:      add     r4, r4, r3
        add     r3, r3, #1
        cmp     r3, #100
        ble     1b
        bl      put_decimal
        mov     r0, #'\n'
        bl      putc
        ldr     r0, =PSCI_SYSTEM_OFF
        hvc     #0
        b       .                       /* not reached */

/* putc: r0 to the UART; clobbers r5 */
putc:
        ldr     r5, [r9, #UART_FR]
        tst     r5, #FR_TXFF
        bne     putc
        strb    r0, [r9]
        bx      lr

/* puts: the NUL-terminated string at r1; clobbers r0, r1, r5, r6 */
puts:
        mov     r6, lr
2:      ldrb    r0, [r1], #1
        cmp     r0, #0
        bxeq    r6
        bl      putc
        b       2b

/* put_decimal: r4 in decimal (up to 10 digits); clobbers r0-r8 */
put_decimal:
        mov     r8, lr
        mov     r7, #0                  /* digits pushed */
        ldr     r6, =0xCCCCCCCD         /* 1/10 as a fixed-point multiplier */
3:      umull   r0, r1, r4, r6
        lsr     r1, r1, #3              /* r1 = r4 / 10 */
        add     r2, r1, r1, lsl #2
        sub     r0, r4, r2, lsl #1      /* r0 = r4 % 10 */
        add     r0, r0, #'0'
        push    {r0}
        add     r7, r7, #1
        movs    r4, r1
        bne     3b
4:      pop     {r0}
        bl      putc
        subs    r7, r7, #1
        bne     4b
        bx      r8

hello:
        .asciz  "Hello from AArch32 under kvmbase! I am CPU "
sum_text:
        .asciz  "; 1 + ... + 100 = "
        .balign 4
        .ltorg
