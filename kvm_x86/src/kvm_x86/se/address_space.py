"""A process's user address space: physical frames, 4-level page tables,
and checked access to guest-virtual memory from the host.

The host keeps every user mapping in :attr:`AddressSpace.pages` (virtual
page number -> page-table entry); the page tables in guest RAM mirror it.
Every access the host makes on the guest's behalf goes through
:meth:`AddressSpace.views`, which returns ``None`` for an address the
guest could not touch itself: the system call then fails with ``EFAULT``.
"""

from __future__ import annotations

import struct
from typing import Final

from kvmbase.sim.memory import GuestMemory

PAGE_SIZE: Final = 4096
PAGE_SHIFT: Final = 12
PAGE_MASK: Final = PAGE_SIZE - 1
#: end of the user half of the 48-bit address space (Linux's TASK_SIZE)
USER_END: Final = 0x7FFF_FFFF_F000

PTE_PRESENT: Final = 1
PTE_WRITABLE: Final = 2
PTE_USER: Final = 4
PTE_HUGE: Final = 0x80
_ADDRESS_MASK: Final = 0x000F_FFFF_FFFF_F000
_U64 = struct.Struct("<Q")


class OutOfGuestMemoryError(Exception):
    """Guest RAM has no free frame left (the system call gets ENOMEM)."""


def _page_flags(writable: bool, accessible: bool) -> int:
    """PTE flags of a user page; an inaccessible one (PROT_NONE) lacks the user
    bit, so any access from CPL3 faults as on Linux."""
    return (PTE_PRESENT | (PTE_USER if accessible else 0)
            | (PTE_WRITABLE if writable and accessible else 0))


class FrameAllocator:
    """Hands out 4 KiB frames of guest RAM from ``start`` up; freed frames
    are reused (zeroed first).  Fresh frames come zero from the host."""

    def __init__(self, ram: GuestMemory, start: int) -> None:
        self.ram = ram
        self.next = start
        self.end = ram.end
        self.free: list[int] = []

    @property
    def used_bytes(self) -> int:
        return self.next - len(self.free) * PAGE_SIZE

    def alloc(self) -> int:
        if self.free:
            frame = self.free.pop()
            offset = frame - self.ram.base
            self.ram.view[offset : offset + PAGE_SIZE] = bytes(PAGE_SIZE)
            return frame
        return self.alloc_run(1)

    def alloc_run(self, count: int) -> int:
        """``count`` physically contiguous fresh frames (zero)."""
        frame = self.next
        if frame + count * PAGE_SIZE > self.end:
            size = self.end - self.ram.base
            raise OutOfGuestMemoryError(f"guest RAM exhausted ({size:#x} bytes)")
        self.next = frame + count * PAGE_SIZE
        return frame

    def release(self, frame: int) -> None:
        self.free.append(frame)


class AddressSpace:
    """User mappings under the PML4 at ``pml4`` (its upper half is the
    kernel's and is left alone)."""

    def __init__(self, ram: GuestMemory, frames: FrameAllocator, pml4: int) -> None:
        self.ram = ram
        self.view = ram.view
        self.base = ram.base
        self.frames = frames
        self.pml4 = pml4
        #: virtual page number -> page-table entry (frame | flags)
        self.pages: dict[int, int] = {}
        #: page-table frame of each (level, index prefix), built on demand
        self._tables: dict[tuple[int, int], int] = {}
        #: set when a mapping went away or lost rights: the guest must
        #: flush its TLB before it runs on
        self.tlb_flush_needed = False

    def rebind(self, ram: GuestMemory) -> None:
        """Go on in ``ram``, a copy of this space's RAM (a forked child's)."""
        self.ram = self.frames.ram = ram
        self.view = ram.view
        self.base = ram.base

    # -- page tables ----------------------------------------------------
    def _write_u64(self, address: int, value: int) -> None:
        _U64.pack_into(self.view, address - self.base, value)

    def _table_for(self, vpn: int) -> int:
        """The page-table frame holding the PTE of ``vpn``, made if needed."""
        table = self.pml4
        for level, shift in ((3, 27), (2, 18), (1, 9)):
            key = (level, vpn >> shift)
            child = self._tables.get(key)
            if child is None:
                child = self.frames.alloc()
                index = (vpn >> shift) & 0x1FF
                self._write_u64(table + 8 * index, child | PTE_PRESENT | PTE_WRITABLE | PTE_USER)
                self._tables[key] = child
            table = child
        return table

    def _set_pte(self, vpn: int, entry: int) -> None:
        table = self._table_for(vpn)
        self._write_u64(table + 8 * (vpn & 0x1FF), entry)

    def map_page(self, address: int, frame: int, *, writable: bool,
                 accessible: bool = True) -> None:
        vpn = address >> PAGE_SHIFT
        entry = frame | _page_flags(writable, accessible)
        if vpn in self.pages:
            self.tlb_flush_needed = True
        self.pages[vpn] = entry
        self._set_pte(vpn, entry)

    def map_anonymous(self, address: int, length: int, *, writable: bool,
                      accessible: bool = True) -> None:
        """Map fresh zero frames (physically contiguous) at ``[address, +length)``;
        pages already mapped there are replaced."""
        count = (length + PAGE_MASK) >> PAGE_SHIFT
        self.unmap(address, count << PAGE_SHIFT)
        frame = self.frames.alloc_run(count)
        flags = _page_flags(writable, accessible)
        vpn = address >> PAGE_SHIFT
        pages = self.pages
        for index in range(count):
            entry = (frame + (index << PAGE_SHIFT)) | flags
            pages[vpn + index] = entry
            self._set_pte(vpn + index, entry)

    def unmap(self, address: int, length: int) -> None:
        first = address >> PAGE_SHIFT
        pages = self.pages
        for vpn in range(first, first + ((length + PAGE_MASK) >> PAGE_SHIFT)):
            entry = pages.pop(vpn, None)
            if entry is not None:
                self._set_pte(vpn, 0)
                self.frames.release(entry & _ADDRESS_MASK)
                self.tlb_flush_needed = True

    def move(self, old: int, new: int, length: int) -> None:
        """Move the pages of ``[old, +length)`` to ``new``: the frames stay, so
        nothing is copied; whatever was mapped at the target must be gone."""
        count = (length + PAGE_MASK) >> PAGE_SHIFT
        source, target = old >> PAGE_SHIFT, new >> PAGE_SHIFT
        pages = self.pages
        moved = [pages.pop(source + index, None) for index in range(count)]
        for index, entry in enumerate(moved):
            if entry is not None:
                self._set_pte(source + index, 0)
        for index, entry in enumerate(moved):
            if entry is not None:
                pages[target + index] = entry
                self._set_pte(target + index, entry)
        self.tlb_flush_needed = True

    def protection(self, address: int) -> tuple[bool, bool]:
        """``(writable, accessible)`` of the mapped page at ``address``."""
        entry = self.pages.get(address >> PAGE_SHIFT, 0)
        return bool(entry & PTE_WRITABLE), bool(entry & PTE_USER)

    def protect(self, address: int, length: int, *, writable: bool,
                accessible: bool = True) -> bool:
        """Change the rights of mapped pages (PROT_NONE: not ``accessible``,
        kept mapped but reserved to the kernel); False if a page is unmapped."""
        first = address >> PAGE_SHIFT
        pages = self.pages
        vpns = range(first, first + ((length + PAGE_MASK) >> PAGE_SHIFT))
        if any(vpn not in pages for vpn in vpns):
            return False
        for vpn in vpns:
            old = pages[vpn]
            entry = (old & _ADDRESS_MASK) | _page_flags(writable, accessible)
            if entry != old:
                pages[vpn] = entry
                self._set_pte(vpn, entry)
                self.tlb_flush_needed = True
        return True

    def is_mapped(self, address: int, length: int) -> bool:
        first = address >> PAGE_SHIFT
        last = (address + length - 1) >> PAGE_SHIFT
        pages = self.pages
        return all(vpn in pages for vpn in range(first, last + 1))

    def is_free(self, address: int, length: int) -> bool:
        first = address >> PAGE_SHIFT
        last = (address + length - 1) >> PAGE_SHIFT
        pages = self.pages
        return not any(vpn in pages for vpn in range(first, last + 1))

    # -- checked access -------------------------------------------------
    def views(self, address: int, length: int, write: bool = False) -> list[memoryview] | None:
        """Host views of guest-virtual ``[address, +length)``, physically
        contiguous pieces merged; ``None`` if the guest could not access it
        (unmapped, outside user space, or read-only for a ``write``)."""
        if length <= 0:
            return [] if length == 0 and 0 <= address <= USER_END else None
        end = address + length
        if address < 0 or end > USER_END:
            return None
        pages = self.pages
        need = PTE_USER | PTE_WRITABLE if write else PTE_USER
        vpn = address >> PAGE_SHIFT
        entry = pages.get(vpn)
        if entry is None or entry & need != need:
            return None
        base = self.base
        start = (entry & _ADDRESS_MASK) - base + (address & PAGE_MASK)
        stop = start + min(length, PAGE_SIZE - (address & PAGE_MASK))
        pieces: list[memoryview] = []
        last_vpn = (end - 1) >> PAGE_SHIFT
        while vpn < last_vpn:
            vpn += 1
            entry = pages.get(vpn)
            if entry is None or entry & need != need:
                return None
            offset = (entry & _ADDRESS_MASK) - base
            if offset != stop:
                pieces.append(self.view[start:stop])
                start = offset
            stop = offset + min(PAGE_SIZE, end - (vpn << PAGE_SHIFT))
        pieces.append(self.view[start:stop])
        return pieces

    def read(self, address: int, length: int) -> bytes | None:
        pieces = self.views(address, length)
        if pieces is None:
            return None
        if len(pieces) == 1:
            return bytes(pieces[0])
        return b"".join(pieces)

    def write(self, address: int, data: bytes | bytearray | memoryview) -> bool:
        pieces = self.views(address, len(data), write=True)
        if pieces is None:
            return False
        done = 0
        for piece in pieces:
            size = len(piece)
            piece[:] = data[done : done + size]
            done += size
        return True

    def write_unchecked(self, address: int, data: bytes | bytearray) -> None:
        """Write into mapped pages whatever their rights (loading, the stack)."""
        pages = self.pages
        done = 0
        while done < len(data):
            here = address + done
            entry = pages[here >> PAGE_SHIFT]
            size = min(len(data) - done, PAGE_SIZE - (here & PAGE_MASK))
            offset = (entry & _ADDRESS_MASK) - self.base + (here & PAGE_MASK)
            self.view[offset : offset + size] = data[done : done + size]
            done += size

    def read_u64(self, address: int) -> int | None:
        data = self.read(address, 8)
        return None if data is None else int.from_bytes(data, "little")

    def read_cstring(self, address: int, limit: int = 4096) -> bytes | None:
        """The NUL-terminated string at ``address`` (without the NUL)."""
        out = bytearray()
        while len(out) < limit:
            chunk = min(PAGE_SIZE - (address & PAGE_MASK), limit - len(out))
            data = self.read(address, chunk)
            if data is None:
                return None
            nul = data.find(0)
            if nul >= 0:
                out += data[:nul]
                return bytes(out)
            out += data
            address += chunk
        return None
