/*
 * coalesced.S - writes into a coalesced MMIO zone, at CPL RING.
 *
 * Zone 0xD0001000 (coalesced), plain device 0xD0002000.  In order:
 *   zone: byte 0x01 @+0, word 0x0202 @+2, dword 0x03030303 @+4,
 *         qword 0x0404040404040404 @+8
 *   plain: dword 0xB0B0B0B0 @+0            (an ordinary MMIO exit)
 *   zone: byte 0x05 @+0x10, word 0x0606 @+0x12
 *   zone: dword read @+0x20 -> r8           (reads always exit)
 *   zone: LOOPS dwords 0, 1, ... LOOPS-1, all @+0x100
 * then hlt.  LOOPS is set by the test (.set LOOPS, n).
 */
        .text
        .globl  _start
        .set    ZONE,  0xD0001000
        .set    PLAIN, 0xD0002000

_start:
        ENTER_RING body
body:
        mov     $ZONE, %rbx
        mov     $PLAIN, %rbp
        movb    $0x01, 0(%rbx)
        movw    $0x0202, 2(%rbx)
        movl    $0x03030303, 4(%rbx)
        movabs  $0x0404040404040404, %rax
        mov     %rax, 8(%rbx)
        movl    $0xB0B0B0B0, 0(%rbp)
        movb    $0x05, 0x10(%rbx)
        movw    $0x0606, 0x12(%rbx)
        movl    0x20(%rbx), %eax
        mov     %rax, %r8
        mov     $LOOPS, %ecx
        xor     %eax, %eax
1:      mov     %eax, 0x100(%rbx)
        inc     %eax
        cmp     %ecx, %eax
        jne     1b
        hlt

        RING0_RETURN
