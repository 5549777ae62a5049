/*
 * counter.S - a ring-3 loop with one port-IO exit per iteration.
 *
 * acc = 0; for i in 1..N: acc = acc * 6364136223846793005 + i (mod 2**64),
 * out the low 32 bits of acc to port 0xE0.  Then out the low and high
 * halves of acc to port 0xE1 and halt.  N is the quad at image offset +8.
 */
        .code64
        .include "ring3.inc"
        .globl  _start
_start:
        jmp     start
        .balign 8
iterations:
        .quad   200

start:
        ENTER_RING3 user

user:
        mov     iterations(%rip), %rcx
        xor     %eax, %eax
        mov     $1, %ebx
        movabs  $6364136223846793005, %rsi
1:      imul    %rsi, %rax
        add     %rbx, %rax
        out     %eax, $0xE0
        inc     %rbx
        dec     %rcx
        jnz     1b
        out     %eax, $0xE1
        shr     $32, %rax
        out     %eax, $0xE1
        hlt

gp_halt:
        cli
        hlt
        jmp     gp_halt
