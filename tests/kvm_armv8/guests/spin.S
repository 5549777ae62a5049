/* spin.S: FP on, then a loop that changes x0 and v0, forever. */
        .include "common.inc"
        .globl  _start
_start:
        enable_fp 9
1:      add     x0, x0, #1
        dup     v0.2d, x0
        b       1b
