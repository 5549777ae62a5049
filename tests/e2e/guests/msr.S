/*
 * msr.S - MSRs both ways: report KERNEL_GS_BASE (set by the host) on port
 * 0xE1, low half then high half; write 0x00007fff12345670 to SYSENTER_ESP
 * for the host to read back; halt.  rdmsr/wrmsr run at CPL0.
 */
        .code64
        .globl  _start
_start:
        mov     $0xC0000102, %ecx
        rdmsr
        out     %eax, $0xE1
        mov     %edx, %eax
        out     %eax, $0xE1
        mov     $0x175, %ecx
        mov     $0x12345670, %eax
        mov     $0x00007FFF, %edx
        wrmsr
        cli
        hlt
