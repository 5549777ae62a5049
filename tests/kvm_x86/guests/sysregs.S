/*
 * sysregs.S - the guest reads its own system state, at CPL0:
 *   r8 = CR0, r9 = CR3, r10 = CR4, r11 = EFER (rdmsr 0xC0000080),
 *   r12 = CS, r13 = SS, r14 = DS, r15 = TR selector,
 *   SGDT to 0x100100, SIDT to 0x100110.
 */
        .text
        .globl  _start
_start:
        mov     %cr0, %r8
        mov     %cr3, %r9
        mov     %cr4, %r10
        mov     $0xC0000080, %ecx
        rdmsr
        shl     $32, %rdx
        mov     %eax, %eax
        or      %rdx, %rax
        mov     %rax, %r11
        mov     %cs, %r12
        mov     %ss, %r13
        mov     %ds, %r14
        xor     %eax, %eax
        str     %ax
        movzwl  %ax, %r15d
        sgdt    gdtr(%rip)
        sidt    idtr(%rip)
        hlt
        .org    0x100
gdtr:   .fill   10, 1, 0xEE
        .org    0x110
idtr:   .fill   10, 1, 0xEE
