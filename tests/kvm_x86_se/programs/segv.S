/* segv.S: a load from address 0 ends the program with SIGSEGV (status 139). */
        .globl  _start
        .text
_start:
        mov     0, %rax
        mov     $60, %eax
        syscall
