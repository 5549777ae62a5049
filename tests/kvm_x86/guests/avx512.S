/*
 * avx512.S - AVX-512 registers at CPL3, starting from the host's values.
 *
 * Needs XCR0 with opmask, ZMM_Hi256 and Hi16_ZMM and CR4.OSXSAVE, set by
 * the host; uses AVX512F and AVX512BW (kmovq, kxorq).
 *
 * At CPL3:
 *   store zmm0-31 at `seen` (0x100800, 64 bytes each) and k0-7 at
 *   `seen_k` (0x101000, 8 bytes each): what the guest found
 *   for n = 0..31 in order: zmm<n> = zmm<n> vpaddq zmm<(n + 1) % 32>
 *   (eight qword adds; zmm31 adds the new zmm0)
 *   for n = 1..7 in order: k<n> = k<n> kxorq k<n - 1>
 *   hlt (#GP at CPL3; the CPL0 handler halts without touching vector state)
 */
        .text
        .globl  _start

/* zmm\n += zmm\next, qword lanes */
.macro ADD n, next
        vpaddq  %zmm\next, %zmm\n, %zmm\n
.endm

/* k\n ^= k\prev */
.macro XORK n, prev
        kxorq   %k\prev, %k\n, %k\n
.endm

_start:
        ENTER_RING user
user:
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        vmovdqu64 %zmm\n, (seen + 64 * \n)(%rip)
        .endr
        .irp    n, 0,1,2,3,4,5,6,7
        kmovq   %k\n, (seen_k + 8 * \n)(%rip)
        .endr

        ADD     0, 1
        ADD     1, 2
        ADD     2, 3
        ADD     3, 4
        ADD     4, 5
        ADD     5, 6
        ADD     6, 7
        ADD     7, 8
        ADD     8, 9
        ADD     9, 10
        ADD     10, 11
        ADD     11, 12
        ADD     12, 13
        ADD     13, 14
        ADD     14, 15
        ADD     15, 16
        ADD     16, 17
        ADD     17, 18
        ADD     18, 19
        ADD     19, 20
        ADD     20, 21
        ADD     21, 22
        ADD     22, 23
        ADD     23, 24
        ADD     24, 25
        ADD     25, 26
        ADD     26, 27
        ADD     27, 28
        ADD     28, 29
        ADD     29, 30
        ADD     30, 31
        ADD     31, 0
        XORK    1, 0
        XORK    2, 1
        XORK    3, 2
        XORK    4, 3
        XORK    5, 4
        XORK    6, 5
        XORK    7, 6
        hlt

        RING0_RETURN

        .org    0x800
seen:   .fill   32 * 64, 1, 0xEE
seen_k: .fill   8 * 8, 1, 0xEE
