/*
 * bad_access.S - one access where no device is, chosen by KIND (.set by
 * the test), at CPL0:
 *   0: out  byte 0x42 to port PORT
 *   1: in   word from port PORT
 *   2: MMIO dword write 0x12345678 to ADDRESS
 *   3: MMIO qword read from ADDRESS
 * RAX is 0x5AFE before the access; hlt after it (never reached).
 */
        .text
        .globl  _start
_start:
        mov     $0x5AFE, %eax
        mov     $PORT, %dx
        mov     $ADDRESS, %rbx
.if KIND == 0
        mov     $0x42, %al
        out     %al, %dx
.elseif KIND == 1
        in      %dx, %ax
.elseif KIND == 2
        movl    $0x12345678, (%rbx)
.else
        mov     (%rbx), %rax
.endif
        hlt
