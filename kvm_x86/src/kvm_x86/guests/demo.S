/*
 * demo.S - the bundled kvmbase demo guest (x86-64, GNU as, AT&T syntax).
 *
 * Loaded and entered at 0x100000 in flat 64-bit long mode at CPL0 by the
 * kvm_x86 plugin (layout: kvm_x86/layout.py).  It
 *   1. prints a banner through the 16550 UART at port 0x3F8 (polling LSR),
 *   2. writes and reads back the scratch MMIO device at 0xD0000000,
 *   3. installs a #GP handler, drops to CPL3 with iretq,
 *   4. runs a xorshift64 compute loop at CPL3 (native speed under PVM),
 *      prints the result from CPL3 (the TSS I/O bitmap allows the ports),
 *   5. executes hlt at CPL3, which faults (#GP) back into the CPL0
 *      handler, which prints a last line,
 *   6. and ends the simulation with status 0 through the guest-ops page
 *      at 0xFFFF0000 (kvmbase/sim/guest_ops.py): a write of the status to
 *      its EXIT register (+0x10).  If the MMIO check of step 2 fails it
 *      ends with status 3 instead.  Should the host run it on after the
 *      exit, it halts with interrupts off.
 *
 * Patchable at fixed offsets: +8 the loop's iteration count, +16 the
 * result the loop stores.  CPL0 code runs in KVM's instruction emulator
 * on PVM hosts, so it stays small and plain.
 */
        .code64
        .text
        .globl  _start

        .set    UART_DATA,   0x3F8
        .set    UART_LSR,    0x3FD
        .set    LSR_THRE,    0x20
        .set    SCRATCH,     0xD0000000
        .set    GUEST_OPS,   0xFFFF0000
        .set    OPS_EXIT,    0x10
        .set    STATUS_MMIO_FAILED, 3
        .set    IDT_BASE,    0x5000
        .set    USER_STACK,  0x70000
        .set    USER_CS,     0x2B
        .set    USER_DS,     0x23
        .set    KERNEL_CS,   0x08

_start:
        jmp     start
        .balign 8
iterations:
        .quad   50000000
result:
        .quad   0

start:
        lea     banner(%rip), %rsi
        call    puts

        /* MMIO: a 32-bit and a 64-bit round trip through the scratch device */
        mov     $SCRATCH, %rbx
        movl    $0x5eed1234, (%rbx)
        movl    (%rbx), %eax
        cmp     $0x5eed1234, %eax
        jne     mmio_failed
        movabs  $0x0123456789abcdef, %rax
        mov     %rax, 8(%rbx)
        mov     8(%rbx), %rcx
        cmp     %rax, %rcx
        jne     mmio_failed
        lea     msg_mmio(%rip), %rsi
        call    puts

        /* #GP (vector 13): the way back from CPL3 */
        lea     gp_handler(%rip), %rax
        mov     $(IDT_BASE + 13 * 16), %rdi
        call    set_gate

        lea     msg_drop(%rip), %rsi
        call    puts
        pushq   $USER_DS
        pushq   $USER_STACK
        pushq   $0x2
        pushq   $USER_CS
        lea     user_main(%rip), %rax
        pushq   %rax
        iretq

mmio_failed:
        lea     msg_mmio_failed(%rip), %rsi
        call    puts
        mov     $STATUS_MMIO_FAILED, %eax
        jmp     exit

/* exit: end the simulation with status %eax (guest-ops EXIT register) */
exit:
        mov     $GUEST_OPS, %ebx
        mov     %eax, OPS_EXIT(%rbx)
        cli
8:      hlt
        jmp     8b

/* set_gate: 64-bit interrupt gate at %rdi to handler %rax, DPL 0 */
set_gate:
        mov     %rax, %rdx
        and     $0xFFFF, %edx
        or      $(KERNEL_CS << 16), %edx
        mov     %edx, (%rdi)
        mov     %rax, %rdx
        shr     $16, %rdx
        shl     $16, %rdx
        or      $0x8E00, %edx
        mov     %edx, 4(%rdi)
        mov     %rax, %rdx
        shr     $32, %rdx
        mov     %edx, 8(%rdi)
        movl    $0, 12(%rdi)
        ret

/* ---- CPL3 -------------------------------------------------------------- */
user_main:
        lea     msg_user(%rip), %rsi
        call    puts
        mov     iterations(%rip), %rcx
        movabs  $0x9E3779B97F4A7C15, %rax
1:      mov     %rax, %rdx
        shl     $13, %rdx
        xor     %rdx, %rax
        mov     %rax, %rdx
        shr     $7, %rdx
        xor     %rdx, %rax
        mov     %rax, %rdx
        shl     $17, %rdx
        xor     %rdx, %rax
        dec     %rcx
        jnz     1b
        mov     %rax, result(%rip)
        lea     msg_result(%rip), %rsi
        call    puts
        mov     result(%rip), %rax
        call    puthex
        mov     $'\n', %al
        call    putc
        hlt                             /* privileged: #GP into gp_handler */

/* ---- CPL0 again ---------------------------------------------------------- */
gp_handler:
        lea     msg_back(%rip), %rsi
        call    puts
        lea     msg_exit(%rip), %rsi
        call    puts
        xor     %eax, %eax
        jmp     exit

/* putc: write %al to the UART once it can take it */
putc:
        push    %rdx
        push    %rax
        mov     $UART_LSR, %dx
3:      in      %dx, %al
        test    $LSR_THRE, %al
        jz      3b
        pop     %rax
        mov     $UART_DATA, %dx
        out     %al, %dx
        pop     %rdx
        ret

/* puts: write the NUL-terminated string at %rsi */
puts:
        push    %rax
4:      movb    (%rsi), %al
        test    %al, %al
        jz      5f
        call    putc
        inc     %rsi
        jmp     4b
5:      pop     %rax
        ret

/* puthex: write %rax as 16 hex digits */
puthex:
        push    %rbx
        push    %rcx
        mov     %rax, %rbx
        mov     $16, %ecx
6:      rol     $4, %rbx
        mov     %bl, %al
        and     $0xF, %al
        add     $'0', %al
        cmp     $'9', %al
        jbe     7f
        add     $('a' - '0' - 10), %al
7:      call    putc
        dec     %ecx
        jnz     6b
        pop     %rcx
        pop     %rbx
        ret

banner:         .asciz "kvmbase demo: hello from a 64-bit guest\n"
msg_mmio:       .asciz "MMIO: scratch device at 0xd0000000 read back what was written\n"
msg_mmio_failed:.asciz "MMIO: scratch device read back the wrong value\n"
msg_drop:       .asciz "dropping to ring 3 for the compute loop\n"
msg_user:       .asciz "ring 3: running xorshift64\n"
msg_result:     .asciz "ring 3: result 0x"
msg_back:       .asciz "ring 0 again (hlt in ring 3 faulted); halting\n"
msg_exit:       .asciz "exiting with status 0 through the guest-ops page\n"
