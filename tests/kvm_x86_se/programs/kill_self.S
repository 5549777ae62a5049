/* kill_self.S: a SIGUSR1 handler runs for kill(getpid(), SIGUSR1), sets a
 * flag and returns; with SIGUSR1 blocked a second kill stays pending until
 * it is unblocked.  Exit status: the number of times the handler ran (2). */
        .globl  _start
        .text
_start:
        mov     $13, %eax               /* rt_sigaction(SIGUSR1, &act, 0, 8) */
        mov     $10, %edi
        lea     act(%rip), %rsi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        mov     $39, %eax               /* getpid */
        syscall
        mov     %rax, %r12
        mov     $62, %eax               /* kill(pid, SIGUSR1) */
        mov     %r12, %rdi
        mov     $10, %esi
        syscall
        mov     $14, %eax               /* rt_sigprocmask(SIG_BLOCK, &set, 0, 8) */
        xor     %edi, %edi
        lea     set(%rip), %rsi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        mov     $62, %eax
        mov     %r12, %rdi
        mov     $10, %esi
        syscall
        cmpq    $1, count(%rip)         /* blocked: not run yet */
        jne     bad
        mov     $14, %eax               /* rt_sigprocmask(SIG_UNBLOCK, &set, 0, 8) */
        mov     $1, %edi
        lea     set(%rip), %rsi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        mov     $60, %eax
        mov     count(%rip), %rdi
        syscall
bad:
        mov     $60, %eax
        mov     $99, %edi
        syscall

handler:
        incq    count(%rip)
        ret

restorer:
        mov     $15, %eax
        syscall

        .data
act:    .quad   handler, 0x04000004, restorer, 0
set:    .quad   1 << 9
count:  .quad   0
