/* enosys.S: an unknown system call (number 400) must return -ENOSYS;
   exit with status -rax (38 when right). */
        .globl  _start
        .text
_start:
        mov     $400, %eax
        syscall
        neg     %rax
        mov     %rax, %rdi
        mov     $60, %eax               /* exit */
        syscall
