"""The initial process stack Linux builds: argc, argv, envp, auxv and the
strings they point to (x86-64 System V ABI)."""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from typing import Final

from kvm_x86.se.address_space import AddressSpace
from kvm_x86.se.elf import LoadedProgram

AT_NULL: Final = 0
AT_PHDR: Final = 3
AT_PHENT: Final = 4
AT_PHNUM: Final = 5
AT_PAGESZ: Final = 6
AT_BASE: Final = 7
AT_FLAGS: Final = 8
AT_ENTRY: Final = 9
AT_UID: Final = 11
AT_EUID: Final = 12
AT_GID: Final = 13
AT_EGID: Final = 14
AT_PLATFORM: Final = 15
AT_HWCAP: Final = 16
AT_CLKTCK: Final = 17
AT_SECURE: Final = 23
AT_RANDOM: Final = 25
AT_HWCAP2: Final = 26
AT_EXECFN: Final = 31

#: the top of the user stack and how much is mapped below it
STACK_TOP: Final = 0x7FFF_FFFF_E000
STACK_SIZE: Final = 8 << 20


def build_initial_stack(
    space: AddressSpace,
    program: LoadedProgram,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    execfn: str,
    hwcap: int,
    ids: tuple[int, int, int, int],
) -> int:
    """Map the stack, write the start-up block; return the initial RSP."""
    space.map_anonymous(STACK_TOP - STACK_SIZE, STACK_SIZE, writable=True)
    strings = bytearray()
    top = STACK_TOP - 16  # a little room at the very top, as Linux leaves

    def put(data: bytes) -> int:
        strings[:0] = data
        return len(strings)

    # Offsets from the top are taken once all strings are known.
    execfn_at = put(execfn.encode() + b"\0")
    env_at = [put(f"{key}={value}".encode() + b"\0") for key, value in reversed(list(env.items()))]
    env_at.reverse()
    arg_at = [put(arg.encode() + b"\0") for arg in reversed(argv)]
    arg_at.reverse()
    platform_at = put(b"x86_64\0")
    random_at = put(os.urandom(16))
    start = (top - len(strings)) & ~0xF
    space.write_unchecked(start, bytes(strings) + bytes(top - start - len(strings)))

    def address(offset: int) -> int:
        return start + len(strings) - offset

    uid, euid, gid, egid = ids
    auxv = [
        (AT_PHDR, program.phdr),
        (AT_PHENT, program.phent),
        (AT_PHNUM, program.phnum),
        (AT_PAGESZ, 4096),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, program.entry),
        (AT_UID, uid),
        (AT_EUID, euid),
        (AT_GID, gid),
        (AT_EGID, egid),
        (AT_PLATFORM, address(platform_at)),
        (AT_HWCAP, hwcap),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_RANDOM, address(random_at)),
        (AT_HWCAP2, 0),
        (AT_EXECFN, address(execfn_at)),
        (AT_NULL, 0),
    ]
    words = [len(argv), *(address(at) for at in arg_at), 0]
    words += [*(address(at) for at in env_at), 0]
    for key, value in auxv:
        words += [key, value]
    block = struct.pack(f"<{len(words)}Q", *words)
    rsp = (start - len(block)) & ~0xF
    space.write_unchecked(rsp, block)
    return rsp
