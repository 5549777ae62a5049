"""The flat 64-bit long-mode machine the x86 plugin sets up.

Guest-physical layout (the same as the C baseline in ``bench/c``):

==========  ==========================================================
0x1000      PML4; [0] -> PDPT
0x2000      PDPT; [0] -> PD 0x3000, [1..3] -> PDs 0x9000..0xB000
0x3000      PD for 0-1 GiB; the first 4 GiB are identity-mapped with
            2 MiB pages, every entry Present|RW|User
0x4000      GDT (limit 0x47): 0x08 kernel code64, 0x10 kernel data,
            0x18 user code32, 0x20 user data, 0x28 user code64,
            0x30 user data, 0x38 64-bit TSS
0x5000      IDT (limit 0xFFF), left to the guest to fill
0x6000      TSS: RSP0 at +4; I/O bitmap at 0x6068 allowing every port
            (PVM clears RFLAGS.IOPL at CPL3, so CPL3 port IO needs it)
0x80000     initial stack top
0x100000    default image load address and entry
==========  ==========================================================

CR0 = PE|MP|ET|NE|WP|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT, EFER = SCE|LME|LMA.
"""

from __future__ import annotations

from typing import Final

from kvm_x86.thread_context import DescriptorTable, Segment, X86ThreadContext
from kvmbase.sim.system import System

PML4: Final = 0x1000
PDPT: Final = 0x2000
PAGE_DIRECTORIES: Final = (0x3000, 0x9000, 0xA000, 0xB000)
GDT: Final = 0x4000
GDT_LIMIT: Final = 0x47
IDT: Final = 0x5000
IDT_LIMIT: Final = 0xFFF
TSS: Final = 0x6000
TSS_IO_BITMAP_OFFSET: Final = 0x68
TSS_LIMIT: Final = TSS_IO_BITMAP_OFFSET + 0x2000
STACK_TOP: Final = 0x80000
LOAD_ADDRESS: Final = 0x100000
#: end of everything the set-up writes: the last page directory (the TSS and
#: its I/O bitmap end below it, at 0x8069)
TABLES_END: Final = max(TSS + TSS_LIMIT + 1, PAGE_DIRECTORIES[-1] + 0x1000)

KERNEL_CS: Final = 0x08
KERNEL_DS: Final = 0x10
USER_DS: Final = 0x23
USER_CS: Final = 0x2B
TSS_SELECTOR: Final = 0x38

CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 31
CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT = 0x20, 0x200, 0x400
EFER_SCE, EFER_LME, EFER_LMA = 1, 1 << 8, 1 << 10
CR0_LONG_MODE: Final = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG
CR4_LONG_MODE: Final = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT
EFER_LONG_MODE: Final = EFER_SCE | EFER_LME | EFER_LMA

_PRESENT, _WRITABLE, _USER, _HUGE = 1, 2, 4, 0x80
_GDT_ENTRIES: Final = (
    0,
    0x00AF9B000000FFFF,  # 0x08 kernel code64
    0x00CF93000000FFFF,  # 0x10 kernel data
    0x00CFFB000000FFFF,  # 0x18 user code32
    0x00CFF3000000FFFF,  # 0x20 user data
    0x00AFFB000000FFFF,  # 0x28 user code64
    0x00CFF3000000FFFF,  # 0x30 user data (SYSEXIT's SS)
)


def _tss_descriptor(base: int, limit: int) -> bytes:
    low = (
        (limit & 0xFFFF)
        | (base & 0xFFFFFF) << 16
        | 0x89 << 40  # present, type 9: available 64-bit TSS
        | ((limit >> 16) & 0xF) << 48
        | ((base >> 24) & 0xFF) << 56
    )
    return low.to_bytes(8, "little") + (base >> 32).to_bytes(8, "little")


def write_tables(system: System, *, tss_rsp0: int) -> None:
    """Write page tables, GDT, an empty IDT and the TSS into guest RAM."""
    flags = _PRESENT | _WRITABLE | _USER
    system.write_memory(PML4, (PDPT | flags).to_bytes(8, "little") + bytes(4088))
    pdpt = b"".join((pd | flags).to_bytes(8, "little") for pd in PAGE_DIRECTORIES)
    system.write_memory(PDPT, pdpt + bytes(4096 - len(pdpt)))
    for gib, pd in enumerate(PAGE_DIRECTORIES):
        entries = (
            ((gib << 30) + (index << 21) | flags | _HUGE).to_bytes(8, "little")
            for index in range(512)
        )
        system.write_memory(pd, b"".join(entries))
    gdt = b"".join(entry.to_bytes(8, "little") for entry in _GDT_ENTRIES)
    system.write_memory(GDT, gdt + _tss_descriptor(TSS, TSS_LIMIT))
    system.write_memory(IDT, bytes(IDT_LIMIT + 1))
    tss = bytearray(TSS_IO_BITMAP_OFFSET)
    tss[4:12] = tss_rsp0.to_bytes(8, "little")
    tss[0x66:0x68] = TSS_IO_BITMAP_OFFSET.to_bytes(2, "little")
    system.write_memory(TSS, bytes(tss) + bytes(0x2000) + b"\xff")


def set_long_mode_state(tc: X86ThreadContext, *, entry: int, stack_top: int) -> None:
    """Put the thread context into flat 64-bit mode at CPL0, at ``entry``."""
    data = Segment(base=0, limit=0xFFFFFFFF, selector=KERNEL_DS, type=3, db=1, g=1)
    tc.segments = {
        "cs": Segment(base=0, limit=0xFFFFFFFF, selector=KERNEL_CS, type=11, l=1, g=1),
        "ds": data,
        "es": Segment(**vars(data)),
        "fs": Segment(**vars(data)),
        "gs": Segment(**vars(data)),
        "ss": Segment(**vars(data)),
        "tr": Segment(base=TSS, limit=TSS_LIMIT, selector=TSS_SELECTOR, type=11, s=0),
        "ldt": Segment(base=0, limit=0, selector=0, type=2, s=0, present=0, unusable=1),
    }
    tc.gdt = DescriptorTable(GDT, GDT_LIMIT)
    tc.idt = DescriptorTable(IDT, IDT_LIMIT)
    tc.regs.update(
        cr0=CR0_LONG_MODE,
        cr3=PML4,
        cr4=CR4_LONG_MODE,
        efer=EFER_LONG_MODE,
        rip=entry,
        rsp=stack_top,
        rflags=0x2,
    )
    tc.mark_dirty()
