/*
 * emulation_failure.S - lock cmpxchg16b at CPL0, which KVM's instruction
 * emulator (all CPL0 code on PVM) cannot emulate.  The instruction sits
 * at 0x100040: bytes f0 48 0f c7 0f.
 */
        .text
        .globl  _start
_start:
        lea     target(%rip), %rdi
        xor     %eax, %eax
        xor     %edx, %edx
        xor     %ebx, %ebx
        xor     %ecx, %ecx
        jmp     failing
        .org    0x40
failing:
        lock cmpxchg16b (%rdi)
        hlt
        .balign 16
target: .quad   0, 0
