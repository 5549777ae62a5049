/*
 * triple.S - shut the CPU down: with an IDT of limit 0, ud2 raises #UD,
 * whose delivery faults (#GP, then #DF), which is a triple fault.
 */
        .code64
        .globl  _start
_start:
        lidt    empty_idt(%rip)
        ud2
empty_idt:
        .word   0
        .quad   0
