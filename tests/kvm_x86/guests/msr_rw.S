/*
 * msr_rw.S - MSRs both ways, at CPL0 (rdmsr/wrmsr run in KVM's emulator).
 *
 * Phase 1: read every MSR of read_indices into seen1 (what the host set),
 *          then wrmsr write_values to write_indices; hlt.
 * Phase 2: (after the host wakes the thread, e.g. in a restored machine)
 *          read every MSR of read_indices again into seen2; hlt.
 *
 * The tables sit at fixed offsets from the load address 0x100000 so that
 * the test can find them: read_indices +0x200 (READ_COUNT longs),
 * write_indices +0x280, write_values +0x300 (quads), seen1 +0x400,
 * seen2 +0x500 (quads, in the order of read_indices).
 */
        .set    READ_COUNT, 13
        .set    WRITE_COUNT, 12

        .text
        .globl  _start
_start:
        xor     %ebx, %ebx
1:      mov     read_indices(,%rbx,4), %ecx
        rdmsr
        mov     %eax, seen1(,%rbx,8)
        mov     %edx, seen1+4(,%rbx,8)
        inc     %ebx
        cmp     $READ_COUNT, %ebx
        jne     1b

        xor     %ebx, %ebx
2:      mov     write_indices(,%rbx,4), %ecx
        mov     write_values(,%rbx,8), %eax
        mov     write_values+4(,%rbx,8), %edx
        wrmsr
        inc     %ebx
        cmp     $WRITE_COUNT, %ebx
        jne     2b
        hlt

        xor     %ebx, %ebx
3:      mov     read_indices(,%rbx,4), %ecx
        rdmsr
        mov     %eax, seen2(,%rbx,8)
        mov     %edx, seen2+4(,%rbx,8)
        inc     %ebx
        cmp     $READ_COUNT, %ebx
        jne     3b
4:      hlt
        jmp     4b

        .org    0x200
read_indices:
        .long   0x174, 0x175, 0x176, 0xC0000081, 0xC0000082, 0xC0000083
        .long   0xC0000084, 0xC0000102, 0x277, 0x2FF, 0x200, 0x201, 0x1A0

        .org    0x280
write_indices:
        .long   0x174, 0x175, 0x176, 0xC0000081, 0xC0000082, 0xC0000083
        .long   0xC0000084, 0xC0000102, 0x277, 0x2FF, 0x200, 0x201

        .org    0x300
write_values:
        .quad   0x8                     /* SYSENTER_CS */
        .quad   0x00007FFF12345670      /* SYSENTER_ESP */
        .quad   0x00007FFF87654320      /* SYSENTER_EIP */
        .quad   0x001B000800000000      /* STAR */
        .quad   0x00007FFF00001000      /* LSTAR */
        .quad   0x00007FFF00002000      /* CSTAR */
        .quad   0x4700                  /* SFMASK */
        .quad   0xFFFF888012345000      /* KERNEL_GS_BASE */
        .quad   0x0606060606060606      /* PAT: write-back everywhere */
        .quad   0x806                   /* MTRR_DEF_TYPE: enabled, WB */
        .quad   0x40000006              /* MTRR_PHYS_BASE0: 1 GiB, WB */
        .quad   0xFC0000800             /* MTRR_PHYS_MASK0: 1 GiB, valid */

        .org    0x400
seen1:  .fill   READ_COUNT, 8, 0xEE
        .org    0x500
seen2:  .fill   READ_COUNT, 8, 0xEE
