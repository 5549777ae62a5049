/*
 * tsc.S - the guest reads its TSC in an endless loop (at CPL3 with
 * RING == 3) and writes each value to MMIO 0xD0000000 (one 8-byte write,
 * one exit per value).  r15 keeps the last value, r14 counts the times a
 * value was below the one before: the guest's own check that its time
 * never ran backwards.
 */
        .text
        .globl  _start
_start:
        ENTER_RING  tsc_loop
tsc_loop:
        xor     %r14d, %r14d
        xor     %r15d, %r15d
        mov     $0xD0000000, %ebx
1:      rdtsc
        shl     $32, %rdx
        mov     %eax, %eax
        or      %rdx, %rax
        cmp     %r15, %rax
        jae     2f
        inc     %r14
2:      mov     %rax, %r15
        mov     %rax, (%rbx)
        jmp     1b

        RING0_RETURN
