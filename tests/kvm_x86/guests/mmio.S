/*
 * mmio.S - MMIO writes and reads of sizes 1, 2, 4 and 8, at CPL RING.
 *
 * Device at 0xD0002000.  Writes: byte 0x11 at +0, word 0x2233 at +2,
 * dword 0x44556677 at +4, qword 0x8899AABBCCDDEEFF at +8.  Reads (RAX = -1
 * before each): byte +0x10 -> r8, word +0x12 -> r9, dword +0x14 -> r10,
 * qword +0x18 -> r11.  Then writes them back: byte r8 at +0x20, word r9
 * at +0x22, dword r10 at +0x24, qword r11 at +0x28.
 */
        .text
        .globl  _start
        .set    DEVICE, 0xD0002000

_start:
        ENTER_RING body
body:
        mov     $DEVICE, %rbx
        movb    $0x11, 0(%rbx)
        movw    $0x2233, 2(%rbx)
        movl    $0x44556677, 4(%rbx)
        movabs  $0x8899AABBCCDDEEFF, %rax
        mov     %rax, 8(%rbx)

        mov     $-1, %rax
        movb    0x10(%rbx), %al
        mov     %rax, %r8
        mov     $-1, %rax
        movw    0x12(%rbx), %ax
        mov     %rax, %r9
        mov     $-1, %rax
        movl    0x14(%rbx), %eax
        mov     %rax, %r10
        mov     $-1, %rax
        movq    0x18(%rbx), %rax
        mov     %rax, %r11

        movb    %r8b, 0x20(%rbx)
        movw    %r9w, 0x22(%rbx)
        movl    %r10d, 0x24(%rbx)
        movq    %r11, 0x28(%rbx)
        hlt

        RING0_RETURN
