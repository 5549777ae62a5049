"""The tiny CPL0 side of a syscall-emulation process.

Guest-physical layout (the first 2 MiB, mapped supervisor-only at
:data:`KERNEL_BASE`, the top 2 GiB of the address space, so the handlers
can use absolute 32-bit addresses):

==========  =============================================================
0x1000      PML4 (lower half: the process; entry 511: the kernel window)
0x2000      kernel PDPT; [510] -> 0x3000
0x3000      kernel page directory; [0] -> 2 MiB page at 0
0x4000      GDT: 0x08 kernel code, 0x10 kernel data, 0x23 user data,
            0x2B user code (64-bit), 0x38 TSS
0x5000      IDT: every exception vector gated to a stub below
0x6000      TSS: RSP0 = the kernel stack; no I/O bitmap (port IO at CPL3
            faults, as on Linux)
0x7000      mailbox: the result the handler loads into RAX, the flag that
            asks it to flush the TLB
0x8000      the handlers' code
0xC000      top of the kernel stack (TSS.RSP0)
0x200000    first frame handed to the process (page tables, user pages)
==========  =============================================================

Each exception stub does ``out %al, $vector``: a port-IO exit whose port
is the vector.  The host serves it (a system call for #UD on ``syscall``,
a fatal signal otherwise), then the stub's common tail reloads CR3 if the
host asked, loads RAX from the mailbox and returns with ``iretq``: four
instructions in KVM's emulator on a PVM host.
"""

from __future__ import annotations

from typing import Final

from kvm_x86 import layout
from kvm_x86.thread_context import DescriptorTable, Segment, X86ThreadContext
from kvmbase.sim.memory import GuestMemory

KERNEL_BASE: Final = 0xFFFF_FFFF_8000_0000
PML4: Final = 0x1000
KERNEL_PDPT: Final = 0x2000
KERNEL_PD: Final = 0x3000
GDT: Final = 0x4000
IDT: Final = 0x5000
TSS: Final = 0x6000
MAILBOX: Final = 0x7000
MAILBOX_RESULT: Final = MAILBOX
MAILBOX_FLAGS: Final = MAILBOX + 8
CODE: Final = 0x8000
STACK_TOP: Final = 0xC000
FIRST_FREE_FRAME: Final = 0x200000

KERNEL_CS: Final = 0x08
KERNEL_DS: Final = 0x10
USER_DS: Final = 0x23
USER_CS: Final = 0x2B
TSS_SELECTOR: Final = 0x38
TSS_LIMIT: Final = 0x67

#: where the CPU pushes the exception frame from CPL3 (guest-physical):
#: RIP, CS, RFLAGS, RSP, SS; the error code, if any, just below
FRAME: Final = STACK_TOP - 40
FRAME_ERROR_CODE: Final = STACK_TOP - 48

#: mailbox flag: reload CR3 before returning (mappings went away)
FLAG_FLUSH_TLB: Final = 1

VECTOR_DE: Final = 0
VECTOR_DB: Final = 1
VECTOR_BP: Final = 3
VECTOR_UD: Final = 6
VECTOR_NM: Final = 7
VECTOR_GP: Final = 13
VECTOR_PF: Final = 14
VECTOR_MF: Final = 16
VECTOR_AC: Final = 17
VECTOR_XM: Final = 19
#: vectors whose frame carries an error code
_ERROR_CODE_VECTORS: Final = frozenset({8, 10, 11, 12, 13, 14, 17, 21})
#: every exception vector gets a stub
VECTORS: Final = tuple(range(32))

_GDT_ENTRIES: Final = (
    0,
    0x00AF9B000000FFFF,  # 0x08 kernel code64
    0x00CF93000000FFFF,  # 0x10 kernel data
    0x00CFFB000000FFFF,  # 0x18 user code32 (unused)
    0x00CFF3000000FFFF,  # 0x20 user data
    0x00AFFB000000FFFF,  # 0x28 user code64
    0x00CFF3000000FFFF,  # 0x30 user data
)
_PRESENT, _WRITABLE, _HUGE = 1, 2, 0x80


def _disp32(physical: int) -> bytes:
    """The sign-extended absolute address of ``physical`` in the kernel window."""
    return ((KERNEL_BASE + physical) & 0xFFFFFFFF).to_bytes(4, "little")


def _common_tail() -> bytes:
    flags, result = _disp32(MAILBOX_FLAGS), _disp32(MAILBOX_RESULT)
    code = b"\xf6\x04\x25" + flags + b"\x01"  # testb $1, FLAGS
    code += b"\x74\x0e"  # jz 1f
    code += b"\xc6\x04\x25" + flags + b"\x00"  # movb $0, FLAGS
    code += b"\x0f\x20\xd8"  # mov %cr3, %rax
    code += b"\x0f\x22\xd8"  # mov %rax, %cr3
    code += b"\x48\x8b\x04\x25" + result  # 1: mov RESULT, %rax
    code += b"\x48\xcf"  # iretq
    return code


def handler_code() -> tuple[bytes, dict[int, int]]:
    """The handlers' machine code (at :data:`CODE`) and each vector's offset in it."""
    tail = _common_tail()
    code = bytearray(tail)
    entries: dict[int, int] = {}
    for vector in VECTORS:
        entries[vector] = len(code)
        stub = b"\xe6" + bytes([vector])  # out %al, $vector
        if vector in _ERROR_CODE_VECTORS:
            stub += b"\x48\x83\xc4\x08"  # add $8, %rsp
        code += stub
        code += b"\xe9" + (-(len(code) + 5)).to_bytes(4, "little", signed=True)  # jmp tail
    return bytes(code), entries


def _gate(offset: int) -> bytes:
    low = (offset & 0xFFFF) | KERNEL_CS << 16 | 0x8E << 40 | ((offset >> 16) & 0xFFFF) << 48
    return low.to_bytes(8, "little") + (offset >> 32).to_bytes(8, "little")


def write_kernel(ram: GuestMemory) -> None:
    """Write the kernel window's tables, GDT, IDT, TSS and handlers into RAM
    (the PML4's user half is left empty)."""
    ram.write(PML4, bytes(4096))
    ram.write(PML4 + 8 * 511, (KERNEL_PDPT | _PRESENT | _WRITABLE).to_bytes(8, "little"))
    ram.write(KERNEL_PDPT, bytes(4096))
    ram.write(KERNEL_PDPT + 8 * 510, (KERNEL_PD | _PRESENT | _WRITABLE).to_bytes(8, "little"))
    ram.write(KERNEL_PD, (_PRESENT | _WRITABLE | _HUGE).to_bytes(8, "little") + bytes(4088))
    gdt = b"".join(entry.to_bytes(8, "little") for entry in _GDT_ENTRIES)
    ram.write(GDT, gdt + layout._tss_descriptor(KERNEL_BASE + TSS, TSS_LIMIT))
    code, entries = handler_code()
    ram.write(CODE, code)
    idt = b"".join(_gate(KERNEL_BASE + CODE + entries[vector]) for vector in VECTORS)
    ram.write(IDT, idt + bytes(4096 - len(idt)))
    tss = bytearray(TSS_LIMIT + 1)
    tss[4:12] = (KERNEL_BASE + STACK_TOP).to_bytes(8, "little")
    tss[0x66:0x68] = (TSS_LIMIT + 1).to_bytes(2, "little")  # no I/O bitmap
    ram.write(TSS, bytes(tss))
    ram.write(MAILBOX, bytes(16))


def set_user_state(tc: X86ThreadContext, *, entry: int, stack_pointer: int) -> None:
    """Start the thread at CPL3 at ``entry`` with the process's stack."""
    data = Segment(base=0, limit=0xFFFFFFFF, selector=USER_DS, type=3, dpl=3, db=1, g=1)
    tc.segments = {
        "cs": Segment(base=0, limit=0xFFFFFFFF, selector=USER_CS, type=11, dpl=3, l=1, g=1),
        "ds": data,
        "es": Segment(**vars(data)),
        "fs": Segment(**vars(data)),
        "gs": Segment(**vars(data)),
        "ss": Segment(**vars(data)),
        "tr": Segment(
            base=KERNEL_BASE + TSS, limit=TSS_LIMIT, selector=TSS_SELECTOR, type=11, s=0
        ),
        "ldt": Segment(base=0, limit=0, selector=0, type=2, s=0, present=0, unusable=1),
    }
    tc.gdt = DescriptorTable(KERNEL_BASE + GDT, 8 * len(_GDT_ENTRIES) + 16 - 1)
    tc.idt = DescriptorTable(KERNEL_BASE + IDT, 16 * len(VECTORS) - 1)
    for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp",
                 "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"):
        tc.regs[name] = 0
    tc.regs.update(
        cr0=layout.CR0_LONG_MODE,
        cr3=PML4,
        cr4=layout.CR4_LONG_MODE,
        # No SCE: ``syscall`` raises #UD, which the host serves.
        efer=layout.EFER_LME | layout.EFER_LMA,
        rip=entry,
        rsp=stack_pointer,
        rflags=0x202,
    )
    tc.mark_dirty()
