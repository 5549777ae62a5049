/* demo.S: the armv8 demo guest.
 *
 * Entered at EL1h with the MMU off and DAIF masked (x0 = boot_x0).  Prints a
 * greeting and its MPIDR_EL1 through the PL011 at 0x09000000 (polling
 * FR.TXFF), sums 1..100 with NEON to show vector state, then powers the
 * machine off with PSCI SYSTEM_OFF (hvc #0).
 */
        .equ    UART, 0x09000000
        .equ    UART_FR, 0x18
        .equ    FR_TXFF, (1 << 5)
        .equ    PSCI_SYSTEM_OFF, 0x84000008

        .text
        .globl  _start
_start:
        mov     x0, #(3 << 20)          /* CPACR_EL1.FPEN: no FP/SIMD traps */
        msr     cpacr_el1, x0
        isb
        ldr     x19, =UART
        adr     x1, hello
        bl      puts
        mrs     x2, mpidr_el1
        and     x2, x2, #0xff
        add     w0, w2, #'0'
        bl      putc
        adr     x1, sum_text
        bl      puts
        /* 1 + 2 + ... + 100 = 5050, in a vector register */
        movi    v0.2d, #0
        mov     x3, #1
1:      dup     v1.2d, x3
        add     v0.2d, v0.2d, v1.2d
        add     x3, x3, #1
        cmp     x3, #100
        b.le    1b
        umov    x4, v0.d[0]
        bl      put_decimal
        mov     w0, #'\n'
        bl      putc
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
        b       .                       /* not reached */

/* putc: w0 to the UART; clobbers w5 */
putc:
        ldr     w5, [x19, #UART_FR]
        tbnz    w5, #5, putc
        strb    w0, [x19]
        ret

/* puts: the NUL-terminated string at x1; clobbers x0, x1, w5, x6 */
puts:
        mov     x6, x30
2:      ldrb    w0, [x1], #1
        cbz     w0, 3f
        bl      putc
        b       2b
3:      ret     x6

/* put_decimal: x4 in decimal; clobbers x0, x4, x5, x7-x10 */
put_decimal:
        mov     x9, x30
        adr     x7, digits_end
        mov     x10, x7
        mov     x8, #10
4:      udiv    x5, x4, x8
        msub    x0, x5, x8, x4
        add     x0, x0, #'0'
        strb    w0, [x10, #-1]!
        mov     x4, x5
        cbnz    x4, 4b
5:      ldrb    w0, [x10], #1
        bl      putc
        cmp     x10, x7
        b.ne    5b
        ret     x9

hello:  .asciz  "Hello from AArch64 under kvmbase! I am CPU "
sum_text:
        .asciz  "; 1 + ... + 100 = "
        .balign 8
        .ltorg
digits: .space  24
digits_end:
