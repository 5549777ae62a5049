/*
 * exit_loops.S - guests of the exit-loop benchmark and the privilege probes.
 *
 * Build:  as exit_loops.S -o exit_loops.o
 *         objcopy -O binary -j .text exit_loops.o exit_loops.bin
 * Load the flat image at guest physical (= virtual) 0x100000.  All code is
 * position independent, so the image also runs natively (compute_core).
 * The machine layout (page tables, GDT, IDT, TSS, stacks) is described in
 * bench/c/exit_loop.c.
 *
 * Entry points (fixed offsets, an 8-byte jump-table slot each):
 *
 *   0x00 pio_loop       out %eax (a 32-bit counter) to port 0xE0, forever.
 *   0x08 mmio_loop      32-bit store of a counter to GPA 0xD0000000, forever.
 *   0x10 compute_loop   RDI = iterations, RSI = seed: runs compute_core, then
 *                       out %eax to port 0xE1 (one exit; full result in RAX),
 *                       then hlt (CPL0) or spins (CPL3).
 *   0x18 compute_core   SysV function u64 f(u64 iters, u64 seed): xorshift64
 *                       over RAX, `iters` rounds; returns with `ret`.  Touches
 *                       only RAX, RDX, RDI.  The native baseline calls it.
 *   0x20 kernel_start   (probes, CPL0) if RBP bit 0 is set, program STAR,
 *                       LSTAR, SFMASK and SYSENTER_{CS,ESP,EIP} with wrmsr;
 *                       then drop to user_stage at CPL3 with method R14.
 *   0x28 user_stage     (probes, CPL3) the steps selected by RBX, see below.
 *   0x30 syscall_entry  LSTAR target.
 *   0x38 sysenter_entry SYSENTER_EIP target.
 *   0x40 int_entry      IDT vectors 0x80 and 0x81 (DPL 3 interrupt gates).
 *   0x48 ud_entry       IDT vector 6 (#UD): skips the 2-byte ud2.
 *   0x50 gp_entry       IDT vector 13 (#GP): reports and halts.
 *   0x58 pf_entry       IDT vector 14 (#PF): reports CR2 and halts.
 *   0x60 df_entry       IDT vector 8 (#DF): reports and halts.
 *   0x68 other_entry    every other IDT vector: reports and halts.
 *   0x70 compute_marked out %eax to port 0xE4 (one exit, a start mark), then
 *                       compute_loop: lets a driver stop once after its
 *                       start-up and time the compute run alone (bench/
 *                       exit_bench.py's framework compute loop).
 *
 * Probe registers: R14 = method used to go from CPL0 to CPL3, both for the
 * first drop and for every handler's return (0 iretq, 1 sysretq, 2 sysexitq,
 * 3 lretq); RBX = steps of user_stage; R12 = compute iterations; R13 =
 * syscall-loop count; R15 = quiet flag (set by user_stage).
 *
 * Ports: 0xE0 pio loop; 0xE1 compute result; 0xE2 report, value =
 * (tag << 16) | CS selector; 0xE3 probe done; 0xE4 timing mark; 0xE5 extra
 * datum (faulting RIP or CR2).
 *
 * Seen on the PVM host (kvm_pvm): at CPL3 `mov %cs` reads the host's user
 * selector 0x33, not 0x2b (only its RPL is meaningful; KVM_GET_SREGS has
 * the guest's view); RFLAGS.IOPL is dropped at CPL3, so `out` there needs
 * the TSS I/O bitmap; `syscall` at CPL3 jumps to LSTAR but stays at CPL3;
 * `sysenter` and `int $n` at CPL3 raise #UD; `lretq` to CPL3 fails in the
 * emulator.  `iretq`, `sysretq` and `sysexitq` work from CPL0 to CPL3, and
 * exceptions (#UD, #GP) reach the IDT handlers at CPL0.
 */

        .code64
        .text

        .set PORT_PIO,      0xe0
        .set PORT_RESULT,   0xe1
        .set PORT_REPORT,   0xe2
        .set PORT_DONE,     0xe3
        .set PORT_MARK,     0xe4
        .set PORT_DATUM,    0xe5
        .set MMIO_ADDR,     0xd0000000

        .set USER_CS,       0x2b
        .set USER_DS,       0x23
        .set USER_STACK,    0x80000
        .set KERNEL_STACK,  0x90000
        .set USER_RFLAGS,   0x3002          /* IOPL 3, reserved bit 1 */
        .set SEED,          0x9e3779b97f4a7c15

        /* report tags (high half of the value sent to PORT_REPORT) */
        .set TAG_USER,      1               /* user_stage reached */
        .set TAG_SYSCALL,   2
        .set TAG_SYSENTER,  3
        .set TAG_INT,       4
        .set TAG_UD,        5
        .set TAG_GP,        6
        .set TAG_PF,        7
        .set TAG_DF,        8
        .set TAG_OTHER,     9
        .set TAG_BACK,      10              /* back in user_stage after a trap */

        /* user_stage steps (bits of RBX) */
        .set STEP_COMPUTE,      1
        .set STEP_SYSCALL,      2
        .set STEP_SYSCALL_LOOP, 4
        .set STEP_INT80,        8
        .set STEP_UD2,          16
        .set STEP_SYSENTER,     32
        .set STEP_INT81,        64

        .macro REPORT tag
        mov     %cs, %eax
        or      $(\tag << 16), %eax
        out     %eax, $PORT_REPORT
        .endm

        .macro SLOT offset, target
        .org    \offset, 0xcc
        jmp     \target
        .endm

        .globl  _start
_start:
        SLOT    0x00, pio_loop
        SLOT    0x08, mmio_loop
        SLOT    0x10, compute_loop
        SLOT    0x18, compute_core
        SLOT    0x20, kernel_start
        SLOT    0x28, user_stage
        SLOT    0x30, syscall_entry
        SLOT    0x38, sysenter_entry
        SLOT    0x40, int_entry
        SLOT    0x48, ud_entry
        SLOT    0x50, gp_entry
        SLOT    0x58, pf_entry
        SLOT    0x60, df_entry
        SLOT    0x68, other_entry
        SLOT    0x70, compute_marked
        .org    0x78, 0xcc

/* ---- benchmark loops ------------------------------------------------- */

pio_loop:
        xor     %eax, %eax
1:      inc     %eax
        out     %eax, $PORT_PIO
        jmp     1b

mmio_loop:
        xor     %eax, %eax
        mov     $MMIO_ADDR, %edx
1:      inc     %eax
        mov     %eax, (%rdx)
        jmp     1b

compute_marked:
        out     %eax, $PORT_MARK
compute_loop:
        call    compute_core
        out     %eax, $PORT_RESULT
        mov     %cs, %edx
        test    $3, %dl
        jnz     1f
        hlt
1:      jmp     1b

/* xorshift64 (13, 7, 17): 11 instructions per round, no memory access. */
compute_core:
        mov     %rsi, %rax
        test    %rdi, %rdi
        jz      2f
1:      mov     %rax, %rdx
        shl     $13, %rdx
        xor     %rdx, %rax
        mov     %rax, %rdx
        shr     $7, %rdx
        xor     %rdx, %rax
        mov     %rax, %rdx
        shl     $17, %rdx
        xor     %rdx, %rax
        dec     %rdi
        jnz     1b
2:      ret

/* ---- privilege probes: CPL0 side ------------------------------------- */

kernel_start:
        test    $1, %ebp
        jz      1f
        mov     $0xc0000081, %ecx       /* STAR: sysret base 0x18, syscall 0x08 */
        xor     %eax, %eax
        mov     $0x00180008, %edx
        wrmsr
        mov     $0xc0000082, %ecx       /* LSTAR */
        lea     syscall_entry(%rip), %rax
        mov     %rax, %rdx
        shr     $32, %rdx
        wrmsr
        mov     $0xc0000084, %ecx       /* SFMASK: keep every flag */
        xor     %eax, %eax
        xor     %edx, %edx
        wrmsr
        mov     $0x174, %ecx            /* SYSENTER_CS */
        mov     $0x08, %eax
        wrmsr
        mov     $0x175, %ecx            /* SYSENTER_ESP */
        mov     $KERNEL_STACK, %eax
        wrmsr
        mov     $0x176, %ecx            /* SYSENTER_EIP */
        lea     sysenter_entry(%rip), %rax
        mov     %rax, %rdx
        shr     $32, %rdx
        wrmsr
1:      lea     user_stage(%rip), %rcx
        mov     $USER_STACK, %edx
        mov     $USER_RFLAGS, %r11d
        jmp     ret_user

/*
 * Go to CPL3 at RIP = RCX with RSP = RDX and RFLAGS = R11, by the method in
 * R14: 0 iretq, 1 sysretq, 2 sysexitq, 3 lretq.
 */
ret_user:
        cmp     $1, %r14
        je      .Lsysret
        cmp     $2, %r14
        je      .Lsysexit
        cmp     $3, %r14
        je      .Llret
        push    $USER_DS
        push    %rdx
        push    %r11
        push    $USER_CS
        push    %rcx
        iretq
.Lsysret:
        mov     %rdx, %rsp
        sysretq
.Lsysexit:
        push    %r11
        popfq
        xchg    %rcx, %rdx              /* sysexit: RIP = RDX, RSP = RCX */
        sysexitq
.Llret:
        push    $USER_DS
        push    %rdx
        push    $USER_CS
        push    %rcx
        lretq

/* Return from an exception/interrupt frame (RIP, CS, RFLAGS, RSP, SS). */
frame_return:
        test    %r14, %r14
        jnz     1f
        iretq
1:      mov     (%rsp), %rcx
        mov     16(%rsp), %r11
        mov     24(%rsp), %rdx
        jmp     ret_user

syscall_entry:                          /* RCX = user RIP, R11 = RFLAGS */
        test    %r15, %r15
        jnz     1f
        REPORT  TAG_SYSCALL
1:      mov     %rsp, %rdx
        jmp     ret_user

sysenter_entry:                         /* RDX = user RIP, RCX = user RSP */
        REPORT  TAG_SYSENTER
        xchg    %rcx, %rdx
        mov     $USER_RFLAGS, %r11d
        jmp     ret_user

int_entry:
        REPORT  TAG_INT
        jmp     frame_return

ud_entry:
        REPORT  TAG_UD
        addq    $2, (%rsp)
        jmp     frame_return

gp_entry:
        REPORT  TAG_GP
        mov     8(%rsp), %eax           /* RIP (above the error code) */
        out     %eax, $PORT_DATUM
        hlt

pf_entry:
        REPORT  TAG_PF
        mov     %cr2, %rax
        out     %eax, $PORT_DATUM
        hlt

df_entry:
        REPORT  TAG_DF
        hlt

other_entry:
        REPORT  TAG_OTHER
        hlt

/* ---- privilege probes: CPL3 side ------------------------------------- */

user_stage:
        xor     %r15d, %r15d
        REPORT  TAG_USER
        test    $STEP_COMPUTE, %ebx
        jz      1f
        mov     %r12, %rdi
        movabs  $SEED, %rsi
        call    compute_core
        out     %eax, $PORT_RESULT
1:      test    $STEP_SYSCALL, %ebx
        jz      2f
        syscall
        REPORT  TAG_BACK
2:      test    $STEP_SYSCALL_LOOP, %ebx
        jz      3f
        mov     $1, %r15d
        xor     %eax, %eax
        out     %eax, $PORT_MARK
        mov     %r13, %r9
.Lsyscall_loop:
        syscall
        dec     %r9
        jnz     .Lsyscall_loop
        mov     $1, %eax
        out     %eax, $PORT_MARK
        xor     %r15d, %r15d
3:      test    $STEP_INT80, %ebx
        jz      4f
        int     $0x80
        REPORT  TAG_BACK
4:      test    $STEP_UD2, %ebx
        jz      5f
        ud2
        REPORT  TAG_BACK
5:      test    $STEP_SYSENTER, %ebx
        jz      6f
        lea     .Lafter_sysenter(%rip), %rdx
        mov     %rsp, %rcx
        sysenter
.Lafter_sysenter:
        REPORT  TAG_BACK
6:      test    $STEP_INT81, %ebx
        jz      7f
        int     $0x81
        REPORT  TAG_BACK
7:      xor     %eax, %eax
        out     %eax, $PORT_DONE
8:      jmp     8b
