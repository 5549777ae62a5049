/* Exit with AT_HWCAP bits 25-26 (SSE, SSE2: CPUID leaf 1 EDX), found in the auxv. */
        .globl _start
_start: mov (%rsp), %rcx          # argc
        lea 16(%rsp,%rcx,8), %rsi  # envp
1:      mov (%rsi), %rax
        add $8, %rsi
        test %rax, %rax
        jnz 1b
2:      mov (%rsi), %rax           # auxv type
        mov 8(%rsi), %rdx
        add $16, %rsi
        cmp $16, %rax
        jne 2b
        shr $25, %rdx
        and $3, %rdx
        mov %rdx, %rdi
        mov $231, %eax
        syscall
