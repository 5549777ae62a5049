/*
 * sse.S - SSE state at CPL3 (RING must be 3).
 *
 * At CPL3: stores MXCSR at 0x100300, then for n = 0..15
 *   xmm<n> = (xmm<n> paddq KADD) pxor KXOR<n>
 * with KADD = qwords (0x0101010101010101, 0x8000000000000001) and KXOR<n>
 * 16 bytes of n * 0x11; then loads MXCSR 0x9F80 (FTZ) and executes hlt at
 * 0x100200, which #GPs back to CPL0, where the handler halts.
 */
        .text
        .globl  _start
_start:
        ENTER_RING user
user:
        stmxcsr mxcsr_seen(%rip)
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        paddq   kadd(%rip), %xmm\n
        pxor    (kxor + 16 * \n)(%rip), %xmm\n
        .endr
        ldmxcsr mxcsr_new(%rip)
        jmp     user_hlt

        RING0_RETURN

        .org    0x200
user_hlt:
        hlt
        .org    0x300
mxcsr_seen:
        .long   0xEEEEEEEE
mxcsr_new:
        .long   0x9F80
        .balign 16
kadd:   .quad   0x0101010101010101, 0x8000000000000001
kxor:
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .fill   16, 1, \n * 0x11
        .endr
