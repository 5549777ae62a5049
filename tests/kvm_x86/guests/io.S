/*
 * io.S - port IO of sizes 1, 2 and 4 (out and in), at CPL RING.
 *
 * The probe device sits on ports 0xE0..0xEF.  Writes: 0x5A to 0xE0 (byte),
 * 0xBEEF to 0xE2 (word), 0xCAFEF00D to 0xE4 (dword), 0xC3 to 0xE1 (byte,
 * through %dx).  Reads, each with RAX = -1 before it: byte 0xE0 -> r8,
 * word 0xE2 -> r9, dword 0xE4 -> r10 (in %al/%ax keep the upper bits, in
 * %eax zero-extends).  Then the low dwords of r8, r9, r10 go out to the
 * report port 0xE8 as dwords.  Ends with hlt (RING 3: #GP -> hlt at CPL0).
 */
        .text
        .globl  _start
        .set    PROBE,  0xE0
        .set    REPORT, 0xE8

_start:
        ENTER_RING body
body:
        mov     $0x5A, %al
        out     %al, $PROBE
        mov     $0xBEEF, %ax
        out     %ax, $(PROBE + 2)
        mov     $0xCAFEF00D, %eax
        out     %eax, $(PROBE + 4)
        mov     $(PROBE + 1), %dx
        mov     $0xC3, %al
        out     %al, %dx

        mov     $-1, %rax
        in      $PROBE, %al
        mov     %rax, %r8
        mov     $-1, %rax
        mov     $(PROBE + 2), %dx
        in      %dx, %ax
        mov     %rax, %r9
        mov     $-1, %rax
        mov     $(PROBE + 4), %dx
        in      %dx, %eax
        mov     %rax, %r10

        mov     %r8d, %eax
        out     %eax, $REPORT
        mov     %r9d, %eax
        out     %eax, $REPORT
        mov     %r10d, %eax
        out     %eax, $REPORT
        hlt

        RING0_RETURN
