/*
 * ops_exit.S - end the simulation with a chosen status through the
 * guest-ops page (kvmbase/sim/guest_ops.py) at 0xFFFF0000.
 *
 * The status is the quad at image offset +8 (default 42); it is written,
 * all 64 bits, to the EXIT register (+0x10).  Run on after the exit, the
 * guest halts.
 */
        .code64
        .globl  _start
        .set    GUEST_OPS, 0xFFFF0000
        .set    OPS_EXIT,  0x10
_start:
        jmp     start
        .balign 8
status:
        .quad   42

start:
        mov     $GUEST_OPS, %ebx
        mov     status(%rip), %rax
        mov     %rax, OPS_EXIT(%rbx)
        cli
1:      hlt
        jmp     1b
