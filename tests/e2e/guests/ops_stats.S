/*
 * ops_stats.S - statistics dumps and a reset asked for by the guest.
 *
 * At CPL0, with the guest-ops page at 0xFFFF0000 in %rbx:
 *   read MAGIC (1 MMIO exit; a wrong value exits with status 91),
 *   5 x out to port 0xE0, dump statistics with tag 0x11,
 *   reset statistics,
 *   7 x out to port 0xE0,
 *   read VERSION, DUMP_STATS and RESET_STATS (3 MMIO exits; expecting 1,
 *   1 and 1, else status 92, 93 or 94),
 *   dump with tag 0x22, dump with tag 0x33, exit with status 7.
 * Each operation is one MMIO write, so one exit.
 */
        .code64
        .globl  _start
        .set    GUEST_OPS,   0xFFFF0000
        .set    OPS_MAGIC,   0x00
        .set    OPS_VERSION, 0x08
        .set    OPS_EXIT,    0x10
        .set    OPS_DUMP,    0x18
        .set    OPS_RESET,   0x20
_start:
        mov     $GUEST_OPS, %ebx
        mov     OPS_MAGIC(%rbx), %rax
        movabs  $0x53504f5453455547, %rdx       /* "GUESTOPS" */
        mov     $91, %edi
        cmp     %rdx, %rax
        jne     fail

        mov     $5, %ecx
1:      out     %eax, $0xE0
        dec     %ecx
        jnz     1b
        movq    $0x11, OPS_DUMP(%rbx)
        movq    $0, OPS_RESET(%rbx)

        mov     $7, %ecx
2:      out     %eax, $0xE0
        dec     %ecx
        jnz     2b
        mov     $92, %edi
        movl    OPS_VERSION(%rbx), %eax
        cmp     $1, %eax
        jne     fail
        mov     $93, %edi
        mov     OPS_DUMP(%rbx), %rax
        cmp     $1, %rax
        jne     fail
        mov     $94, %edi
        mov     OPS_RESET(%rbx), %rax
        cmp     $1, %rax
        jne     fail
        movq    $0x22, OPS_DUMP(%rbx)
        movq    $0x33, OPS_DUMP(%rbx)
        mov     $7, %edi
fail:
        mov     %rdi, OPS_EXIT(%rbx)
        cli
3:      hlt
        jmp     3b
