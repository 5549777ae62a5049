"""Loading a static ELF64 x86-64 executable (ET_EXEC or static PIE) into an
:class:`~kvm_x86.se.address_space.AddressSpace`."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from kvm_x86.se.address_space import PAGE_MASK, PAGE_SIZE, AddressSpace

PT_LOAD: Final = 1
PT_INTERP: Final = 3
PT_PHDR: Final = 6
PF_W: Final = 2
ET_EXEC: Final = 2
ET_DYN: Final = 3
EM_X86_64: Final = 62
#: where a static PIE is placed (Linux's ELF_ET_DYN_BASE, without randomisation)
PIE_BASE: Final = 0x5555_5555_4000

_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")


class ElfError(Exception):
    """The file is not an executable this loader can run."""


@dataclass(frozen=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class LoadedProgram:
    """Where a loaded program's parts ended up (for the auxiliary vector)."""

    entry: int
    phdr: int
    phent: int
    phnum: int
    #: first address past the highest segment, page-aligned: the initial brk
    brk: int
    load_bias: int


def parse_segments(data: bytes, path: str) -> tuple[int, int, int, list[Segment]]:
    """``(type, entry, phoff, segments)`` of an ELF64 x86-64 file, checked."""
    if len(data) < _HEADER.size or data[:4] != b"\x7fELF":
        raise ElfError(f"{path}: not an ELF file")
    ident, e_type, machine, _version, entry, phoff, _shoff, _flags, _ehsize, phentsize, phnum = (
        _HEADER.unpack_from(data)[:11]
    )
    if ident[4] != 2 or ident[5] != 1:
        raise ElfError(f"{path}: not a 64-bit little-endian ELF file")
    if machine != EM_X86_64:
        raise ElfError(f"{path}: not an x86-64 program (ELF machine {machine})")
    if e_type not in (ET_EXEC, ET_DYN):
        raise ElfError(f"{path}: not an executable (ELF type {e_type})")
    if phentsize != _PHDR.size or phoff + phnum * phentsize > len(data):
        raise ElfError(f"{path}: bad program header table")
    segments = []
    for index in range(phnum):
        p_type, flags, offset, vaddr, _paddr, filesz, memsz, _align = _PHDR.unpack_from(
            data, phoff + index * phentsize
        )
        segments.append(Segment(p_type, flags, offset, vaddr, filesz, memsz))
    return e_type, entry, phoff, segments


def load_elf(space: AddressSpace, data: bytes, path: str) -> LoadedProgram:
    """Map the PT_LOAD segments of ``data`` (the file ``path``): file bytes
    copied, the rest zero; refuse a dynamically linked program."""
    e_type, entry, phoff, segments = parse_segments(data, path)
    for segment in segments:
        if segment.type == PT_INTERP:
            end = data.find(b"\0", segment.offset, segment.offset + segment.filesz)
            interp = data[segment.offset : end if end >= 0 else None].decode(errors="replace")
            raise ElfError(
                f"{path}: dynamically linked (interpreter {interp}); "
                "kvmbase exec runs static executables only"
            )
    loads = [segment for segment in segments if segment.type == PT_LOAD]
    if not loads:
        raise ElfError(f"{path}: no loadable segment")
    bias = PIE_BASE if e_type == ET_DYN else 0
    for segment in loads:
        if segment.memsz == 0:
            continue
        if segment.filesz > segment.memsz or segment.offset + segment.filesz > len(data):
            raise ElfError(f"{path}: segment at {segment.vaddr:#x} is larger than the file")
        start = (bias + segment.vaddr) & ~PAGE_MASK
        end = (bias + segment.vaddr + segment.memsz + PAGE_MASK) & ~PAGE_MASK
        writable = bool(segment.flags & PF_W)
        # Pages a previous segment mapped already are shared, not replaced.
        for page in range(start, end, PAGE_SIZE):
            if space.is_free(page, PAGE_SIZE):
                space.map_anonymous(page, PAGE_SIZE, writable=writable)
            elif writable:
                space.protect(page, PAGE_SIZE, writable=True)
        file_bytes = data[segment.offset : segment.offset + segment.filesz]
        space.write_unchecked(bias + segment.vaddr, file_bytes)
    highest = max(bias + segment.vaddr + segment.memsz for segment in loads)
    phdr = next((bias + s.vaddr for s in segments if s.type == PT_PHDR), None)
    if phdr is None:
        # The headers are mapped where the segment holding file offset phoff is.
        phdr = next(
            (
                bias + s.vaddr + phoff - s.offset
                for s in loads
                if s.offset <= phoff < s.offset + s.filesz
            ),
            0,
        )
    return LoadedProgram(
        entry=bias + entry,
        phdr=phdr,
        phent=_PHDR.size,
        phnum=len(segments),
        brk=(highest + PAGE_MASK) & ~PAGE_MASK,
        load_bias=bias,
    )
