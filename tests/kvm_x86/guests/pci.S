/*
 * pci.S - find the PCI scratch device through configuration mechanism #1,
 * size and program its BARs, and use it through MMIO and IO, at CPL RING.
 *
 * Symbols the test sets: RING, BAR0_ADDRESS, BAR0_MOVED, BAR2_ADDRESS
 * (inside the first 4 GiB, outside RAM), IO_BASE (port of BAR4), ABSENT_SLOT
 * (a slot with no device).  Every result goes out as a dword to port REPORT
 * (0xE8), in the order the test lists them; one byte to port MARK (0xE4)
 * says "BARs programmed" (the checkpoint test stops there).  Ends with hlt
 * (RING 3: #GP -> hlt at CPL0).
 *
 * Register use: r12d = slot of the device (ID 0x7E571234), ebx loop counter.
 */
        .text
        .globl  _start
        .set    REPORT, 0xE8
        .set    MARK, 0xE4
        .set    CONFIG_ADDRESS, 0xCF8
        .set    CONFIG_DATA, 0xCFC
        .set    ENABLE, 0x80000000
        .set    SCRATCH_ID, 0x7E571234

.macro  SEND
        out     %eax, $REPORT
.endm

/* CONFIG_ADDRESS <- enable | r12d << 11 | \reg; leaves dx = CONFIG_DATA */
.macro  SELECT reg
        mov     $\reg, %esi
        call    select
.endm

_start:
        ENTER_RING body
body:
        /* 1. enumerate bus 0: vendor/device dword of function 0 of each slot */
        xor     %ebx, %ebx
        mov     $-1, %r12d
1:      mov     %ebx, %eax
        shl     $11, %eax
        or      $ENABLE, %eax
        mov     $CONFIG_ADDRESS, %dx
        out     %eax, %dx
        mov     $CONFIG_DATA, %dx
        in      %dx, %eax
        SEND
        cmp     $SCRATCH_ID, %eax
        jne     2f
        cmp     $-1, %r12d
        jne     2f
        mov     %ebx, %r12d
2:      inc     %ebx
        cmp     $32, %ebx
        jb      1b
        mov     %r12d, %eax
        SEND                                    /* the slot found */
        cmp     $-1, %r12d
        je      done

        /* 2. the header: ids, command/status, class/revision, header type,
         * the six BARs, subsystem, capabilities pointer, interrupt */
        .irp    reg, 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x2C, 0x34, 0x3C
        SELECT  \reg
        in      %dx, %eax
        SEND
        .endr

        /* 3. size BAR0 (32-bit memory): raw read-back, then the size */
        SELECT  0x10
        mov     $0xFFFFFFFF, %eax
        out     %eax, %dx
        in      %dx, %eax
        SEND
        and     $0xFFFFFFF0, %eax
        not     %eax
        inc     %eax
        SEND

        /* 4. size BAR2 (64-bit memory): both halves, then the 64-bit size */
        SELECT  0x18
        mov     $0xFFFFFFFF, %eax
        out     %eax, %dx
        in      %dx, %eax
        mov     %eax, %r13d
        SEND
        SELECT  0x1C
        mov     $0xFFFFFFFF, %eax
        out     %eax, %dx
        in      %dx, %eax
        SEND
        shl     $32, %rax
        and     $0xFFFFFFF0, %r13d
        or      %r13, %rax
        neg     %rax
        SEND                                    /* size, low dword */
        shr     $32, %rax
        SEND                                    /* size, high dword */

        /* 5. size BAR4 (IO) */
        SELECT  0x20
        mov     $0xFFFFFFFF, %eax
        out     %eax, %dx
        in      %dx, %eax
        SEND
        and     $0xFFFFFFFC, %eax
        not     %eax
        inc     %eax
        SEND

        /* 6. program the BARs; enable IO and memory decoding with a word
         * write; read command/status back */
        SELECT  0x10
        mov     $BAR0_ADDRESS, %eax
        out     %eax, %dx
        SELECT  0x18
        mov     $BAR2_ADDRESS, %eax
        out     %eax, %dx
        SELECT  0x1C
        xor     %eax, %eax
        out     %eax, %dx
        SELECT  0x20
        mov     $IO_BASE, %eax
        out     %eax, %dx
        SELECT  0x04
        mov     $0x0003, %ax
        out     %ax, %dx
        in      %dx, %eax
        SEND
        mov     $1, %al
        out     %al, $MARK

        /* 7. MMIO: ID and MEMORY_SIZE registers, scratch, SUM, memory */
        mov     $BAR0_ADDRESS, %edi
        mov     (%rdi), %eax
        SEND
        mov     4(%rdi), %eax
        SEND
        movl    $0x11111111, 0x100(%rdi)
        movl    $0x22222222, 0x104(%rdi)
        movl    $0x01020304, 0xFFC(%rdi)
        mov     0x104(%rdi), %eax
        SEND
        mov     8(%rdi), %eax
        SEND
        mov     $BAR2_ADDRESS, %esi
        mov     $0x0123456789ABCDEF, %rax
        mov     %rax, 0x10(%rsi)
        mov     $0xFEDCBA98, %eax
        mov     %eax, 0xFFFC(%rsi)
        mov     0x10(%rsi), %rax
        SEND
        shr     $32, %rax
        SEND
        mov     0xFFFC(%rsi), %eax
        SEND
        /* the first registers again, through BAR4's ports */
        mov     $IO_BASE, %dx
        in      %dx, %eax
        SEND
        add     $8, %dx
        in      %dx, %eax
        SEND

        /* 8. byte and word config accesses */
        SELECT  0x00
        xor     %eax, %eax
        add     $2, %dx
        in      %dx, %ax                        /* device ID, word at 0xCFE */
        SEND
        SELECT  0x0C
        xor     %eax, %eax
        add     $2, %dx
        in      %dx, %al                        /* header type, byte at 0xCFE */
        SEND
        SELECT  0x3C
        mov     $0x0B, %al
        out     %al, %dx                        /* interrupt line, byte at 0xCFC */
        xor     %eax, %eax
        inc     %dx
        in      %dx, %al                        /* interrupt pin, byte at 0xCFD */
        SEND
        SELECT  0x00
        add     $2, %dx
        mov     $0x5555, %ax
        out     %ax, %dx                        /* device ID is read-only */
        SELECT  0x08
        mov     $0xAAAAAAAA, %eax
        out     %eax, %dx                       /* class and revision too */
        .irp    reg, 0x00, 0x08, 0x3C
        SELECT  \reg
        in      %dx, %eax
        SEND
        .endr
        SELECT  0x0C
        mov     $0x4010, %ax
        out     %ax, %dx                        /* cache line size, latency timer */
        in      %dx, %eax
        SEND

        /* 9. an absent slot reads all ones in every width; writes vanish */
        mov     $(ENABLE | ABSENT_SLOT << 11), %eax
        mov     $CONFIG_ADDRESS, %dx
        out     %eax, %dx
        mov     $CONFIG_DATA, %dx
        mov     $0x12345678, %eax
        out     %eax, %dx
        in      %dx, %eax
        SEND
        xor     %eax, %eax
        add     $2, %dx
        in      %dx, %ax
        SEND
        xor     %eax, %eax
        inc     %dx
        in      %dx, %al
        SEND
        /* the device's slot without the enable bit reads all ones too */
        mov     %r12d, %eax
        shl     $11, %eax
        mov     $CONFIG_ADDRESS, %dx
        out     %eax, %dx
        mov     $CONFIG_DATA, %dx
        in      %dx, %eax
        SEND

        /* 10. CONFIG_ADDRESS reads back; byte and word accesses to
         * 0xCF8-0xCFB leave it alone and read all ones */
        mov     $CONFIG_ADDRESS, %dx
        mov     $0x80FFFF3F, %eax
        out     %eax, %dx
        in      %dx, %eax
        SEND
        xor     %eax, %eax
        out     %al, %dx
        add     $2, %dx
        out     %ax, %dx
        sub     $2, %dx
        in      %dx, %eax
        SEND
        xor     %eax, %eax
        in      %dx, %al
        SEND
        xor     %eax, %eax
        add     $2, %dx
        in      %dx, %ax
        SEND

        /* 11. move BAR0 with memory decoding off, use it there, then turn
         * IO decoding off (BAR4 leaves the bus) */
        SELECT  0x04
        mov     $0x0001, %ax
        out     %ax, %dx
        SELECT  0x10
        mov     $BAR0_MOVED, %eax
        out     %eax, %dx
        SELECT  0x04
        mov     $0x0003, %ax
        out     %ax, %dx
        mov     $BAR0_MOVED, %edi
        mov     (%rdi), %eax
        SEND
        mov     0x104(%rdi), %eax               /* the scratch moved with it */
        SEND
        SELECT  0x04
        mov     $0x0002, %ax
        out     %ax, %dx
        in      %dx, %eax
        SEND

done:
        hlt

/* CONFIG_ADDRESS <- ENABLE | r12d << 11 | esi; dx <- CONFIG_DATA */
select:
        mov     %r12d, %eax
        shl     $11, %eax
        or      %esi, %eax
        or      $ENABLE, %eax
        mov     $CONFIG_ADDRESS, %dx
        out     %eax, %dx
        mov     $CONFIG_DATA, %dx
        ret

        RING0_RETURN
