/*
 * regs.S - transforms every GPR and two flags without touching the others
 * (lea, not, bswap, xchg: no arithmetic flags change), at CPL0.
 *
 * The layout's entry (0x100000) only halts: the test sets RIP to 0x100010.
 *   rax += 0x1111          rbx = ~rbx              rcx = bswap(rcx)
 *   rdx -= 0x2222          rsi <-> rdi             rbp *= 3
 *   rsp += 0x40            r8 = ~r8                r9 = bswap(r9)
 *   r10 += 0x7fffffff      r11 *= 2                r12 <-> r13
 *   r14 -= 1               r15 = ~bswap(r15)
 *   RFLAGS: CF complemented (cmc), DF cleared (cld)
 * then hlt as the last byte of the image.
 */
        .text
        .globl  _start
_start:
        hlt
        .org    0x10
entry:
        lea     0x1111(%rax), %rax
        not     %rbx
        bswap   %rcx
        lea     -0x2222(%rdx), %rdx
        xchg    %rsi, %rdi
        lea     (%rbp,%rbp,2), %rbp
        lea     0x40(%rsp), %rsp
        not     %r8
        bswap   %r9
        lea     0x7fffffff(%r10), %r10
        lea     (%r11,%r11), %r11
        xchg    %r12, %r13
        lea     -1(%r14), %r14
        bswap   %r15
        not     %r15
        cmc
        cld
        hlt
