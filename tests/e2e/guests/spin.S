/*
 * spin.S - ring 3 forever: counts in rax and never exits on its own.
 * Only a kick (or the run timer) brings the vCPU back to the host.
 */
        .code64
        .include "ring3.inc"
        .globl  _start
_start:
        ENTER_RING3 user
user:
        xor     %eax, %eax
1:      inc     %rax
        jmp     1b

gp_halt:
        cli
        hlt
        jmp     gp_halt
