/*
 * string_io.S - string port IO with counts above 1, at CPL RING.
 *
 * rep outsb: the 5 bytes "kvm!?" at 0x100200 to port 0xE1.
 * rep insw:  4 words from port 0xE2 into 0x100210 (16 bytes of 0xCC
 *            there beforehand, so words past the count stay 0xCCCC).
 * r8/r9 keep RSI/RCX after the outsb; RDI/RCX are left after the insw.
 */
        .text
        .globl  _start
        .set    PROBE, 0xE0

_start:
        ENTER_RING body
body:
        cld
        lea     src(%rip), %rsi
        mov     $(PROBE + 1), %dx
        mov     $5, %ecx
        rep outsb
        mov     %rsi, %r8
        mov     %rcx, %r9
        lea     dst(%rip), %rdi
        mov     $(PROBE + 2), %dx
        mov     $4, %ecx
        rep insw
        hlt

        RING0_RETURN

        .org    0x200
src:    .ascii  "kvm!?"
        .org    0x210
dst:    .fill   16, 1, 0xCC
