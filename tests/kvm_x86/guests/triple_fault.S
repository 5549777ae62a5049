/*
 * triple_fault.S - load an IDT of limit 0, then ud2 at CPL0: the #UD
 * cannot be delivered (#GP), nor can that (#DF), so the CPU shuts down.
 */
        .text
        .globl  _start
_start:
        lidt    empty_idt(%rip)
        ud2
        hlt
        .balign 16
empty_idt:
        .word   0
        .quad   0
