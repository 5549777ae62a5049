/*
 * cpuid_post.S - report this CPU's CPUID through the POST-code port.
 *
 * Entered at CPL0 in flat 64-bit long mode (kvm_x86's boot state), it makes
 * 32-bit writes to port 0x80: leaf 0 EAX (the max basic leaf), then the 12
 * dwords of the brand string (leaves 0x80000002-0x80000004: EAX, EBX, ECX,
 * EDX each). It ends with status 0 through the guest-ops page.
 */
        .code64
        .text
        .globl  _start

        .set    POST_PORT,   0x80
        .set    GUEST_OPS,   0xFFFF0000
        .set    OPS_EXIT,    0x10

_start:
        xor     %eax, %eax
        xor     %ecx, %ecx
        cpuid
        out     %eax, $POST_PORT
        mov     $0x80000002, %esi
1:      mov     %esi, %eax
        xor     %ecx, %ecx
        cpuid
        out     %eax, $POST_PORT
        mov     %ebx, %eax
        out     %eax, $POST_PORT
        mov     %ecx, %eax
        out     %eax, $POST_PORT
        mov     %edx, %eax
        out     %eax, $POST_PORT
        inc     %esi
        cmp     $0x80000005, %esi
        jne     1b
        mov     $GUEST_OPS, %ebx
        movl    $0, OPS_EXIT(%rbx)
        cli
2:      hlt
        jmp     2b
