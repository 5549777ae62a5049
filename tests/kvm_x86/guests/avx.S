/*
 * avx.S - 256-bit AVX work at CPL3 in two phases around a port-IO exit.
 *
 * Needs the host to have enabled AVX for the guest (XCR0 bits x87|SSE|AVX
 * and CR4.OSXSAVE); xsetbv is not run here because it fails in this host's
 * CPL0 instruction emulator.  Uses AVX1 instructions only.
 *
 * Symbols: LOAD = 1 loads ymm0-15 from `initial`; LOAD = 0 starts from the
 * values the host wrote into the registers.
 *
 * At CPL3, with ymm<n> as 4 doubles:
 *   store ymm0-15 at `seen` (0x100800, 32 bytes each)
 *   phase 1: ymm<n> = (ymm<n> vaddpd `addend`) vxorpd flip<n>
 *            (flip<n>, lane l: sign bit if (4n + l) is odd, plus the low
 *            mantissa bits 4n + l + 1, so every value stays a finite double)
 *   out %al (= 1) to port 0xE0: the host may stop and checkpoint here
 *   phase 2: for n = 0..15 in order: ymm<n> = ymm<n> vaddpd
 *            ymm<(n + 1) % 16> (so ymm15 adds the new ymm0); for odd n the
 *            128-bit lanes swap (vperm2f128 $1); ymm<n> = ymm<n> vmulpd `scale`
 *   store ymm0-15 at `final` (0x100A00), xor the 64 qwords of `final`
 *   into rax, out its low then high dword to port 0xE1, and hlt (#GP at
 *   CPL3, the CPL0 handler halts; no YMM register changes after `final`).
 */
        .text
        .globl  _start
        .set    PHASE,  0xE0
        .set    RESULT, 0xE1

/* Phase 2, one register: add the next one, swap lanes if \swap, scale. */
.macro STEP n, next, swap
        vaddpd  %ymm\next, %ymm\n, %ymm\n
.if \swap
        vperm2f128 $1, %ymm\n, %ymm\n, %ymm\n
.endif
        vmulpd  scale(%rip), %ymm\n, %ymm\n
.endm

_start:
        ENTER_RING user
user:
.if LOAD
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        vmovupd (initial + 32 * \n)(%rip), %ymm\n
        .endr
.endif
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        vmovupd %ymm\n, (seen + 32 * \n)(%rip)
        .endr

        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        vaddpd  addend(%rip), %ymm\n, %ymm\n
        vxorpd  (flip + 32 * \n)(%rip), %ymm\n, %ymm\n
        .endr
        mov     $1, %al
        out     %al, $PHASE

        STEP    0, 1, 0
        STEP    1, 2, 1
        STEP    2, 3, 0
        STEP    3, 4, 1
        STEP    4, 5, 0
        STEP    5, 6, 1
        STEP    6, 7, 0
        STEP    7, 8, 1
        STEP    8, 9, 0
        STEP    9, 10, 1
        STEP    10, 11, 0
        STEP    11, 12, 1
        STEP    12, 13, 0
        STEP    13, 14, 1
        STEP    14, 15, 0
        STEP    15, 0, 1

        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        vmovupd %ymm\n, (final + 32 * \n)(%rip)
        .endr
        lea     final(%rip), %rsi
        xor     %eax, %eax
        mov     $64, %ecx
1:      xor     (%rsi), %rax
        add     $8, %rsi
        dec     %ecx
        jnz     1b
        out     %eax, $RESULT
        shr     $32, %rax
        out     %eax, $RESULT
        jmp     user_end

        RING0_RETURN

        .org    0x700
user_end:
        hlt

        .org    0x800
seen:   .fill   16 * 32, 1, 0xEE
final:  .fill   16 * 32, 1, 0xEE
addend: .quad   0x3FB999999999999A, 0xC00921FB54442D18, 0x4005BF0A8B145769, 0x3FE0000000000001
scale:  .quad   0x3FF8000000000000, 0xBFE0000000000000, 0x400921FB54442D18, 0x3FF0000000000001
flip:
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .irp    l, 0,1,2,3
        .quad   (((4 * \n + \l) & 1) << 63) | (4 * \n + \l + 1)
        .endr
        .endr
initial:
        .irp    n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .irp    l, 0,1,2,3
        .quad   0x3FF0000000000000 + (4 * \n + \l) * 0x000123456789ABCD
        .endr
        .endr
