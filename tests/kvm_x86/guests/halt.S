/* halt.S - nothing but hlt at the entry, at CPL0 (interrupts off). */
        .text
        .globl  _start
_start:
        hlt
