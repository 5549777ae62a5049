/*
 * ops_checkpoint.S - a ring-3 loop that asks for two checkpoints.
 *
 * acc = 0; for i in 1..N: acc = acc * 6364136223846793005 + i (mod 2**64),
 * out the low 32 bits of acc to port 0xE0; after the out of i = 100 and of
 * i = 200, write i to the guest-ops CHECKPOINT register (0xFFFF0028), read
 * it back (checkpoints written so far) and out that to port 0xE1.  At the
 * end, out the low and high halves of acc to port 0xE1 and exit with
 * status acc & 0xFF.  N is the quad at image offset +8.
 */
        .code64
        .include "ring3.inc"
        .globl  _start
        .set    GUEST_OPS,  0xFFFF0000
        .set    OPS_EXIT,   0x10
        .set    OPS_CHECKPOINT, 0x28
_start:
        jmp     start
        .balign 8
iterations:
        .quad   300

start:
        ENTER_RING3 user

user:
        mov     $GUEST_OPS, %r12d
        mov     iterations(%rip), %rcx
        xor     %eax, %eax
        mov     $1, %ebx
        movabs  $6364136223846793005, %rsi
1:      imul    %rsi, %rax
        add     %rbx, %rax
        out     %eax, $0xE0
        cmp     $100, %rbx
        je      2f
        cmp     $200, %rbx
        jne     3f
2:      mov     %rbx, OPS_CHECKPOINT(%r12)
        mov     %rax, %r13
        mov     OPS_CHECKPOINT(%r12), %rax
        out     %eax, $0xE1
        mov     %r13, %rax
3:      inc     %rbx
        dec     %rcx
        jnz     1b
        mov     %rax, %r13
        out     %eax, $0xE1
        shr     $32, %rax
        out     %eax, $0xE1
        movzbl  %r13b, %eax
        mov     %rax, OPS_EXIT(%r12)
        hlt                             /* not reached: the exit ends the run */

gp_halt:
        cli
        hlt
        jmp     gp_halt
