"""A ``newc`` cpio writer: what the Linux kernel unpacks as an initramfs.

Written here rather than run through ``cpio`` so that every entry is owned by
root, has a fixed time stamp (the same tree gives the same bytes) and device
nodes such as ``/dev/console`` can be added without being root.
Several archives one after the other are one initramfs to the kernel.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

_TRAILER = "TRAILER!!!"


class CpioWriter:
    """Append entries to a newc archive; :meth:`close` writes the trailer."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self._inode = 1
        self._seen: set[str] = set()

    def _header(self, name: str, mode: int, size: int, rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = (
            self._inode, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], len(encoded), 0,
        )  # fmt: skip
        self._inode += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.out.write(header + encoded)
        self.out.write(b"\0" * (-(len(header) + len(encoded)) % 4))

    def _data(self, data: bytes) -> None:
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            self.directory("/".join(parts[:depth]))

    def directory(self, name: str, mode: int = 0o755) -> None:
        name = name.strip("/")
        if not name or name in self._seen:
            return
        self._parents(name)
        self._seen.add(name)
        self._header(name, stat.S_IFDIR | mode, 0)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        self._parents(name)
        self._seen.add(name)
        self._header(name, stat.S_IFREG | (mode & 0o7777), len(data))
        self._data(data)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        self._parents(name)
        self._seen.add(name)
        encoded = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(encoded))
        self._data(encoded)

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        name = name.strip("/")
        self._parents(name)
        self._seen.add(name)
        self._header(name, stat.S_IFCHR | mode, 0, (major, minor))

    def tree(self, folder: Path, prefix: str = "") -> None:
        """Add everything under ``folder`` as ``prefix/...``, in sorted order."""
        base = prefix.strip("/")
        if base:
            self.directory(base)
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            here = Path(dirpath)
            relative = here.relative_to(folder).as_posix()
            inside = "/".join(part for part in (base, relative) if part and part != ".")
            for entry in sorted(dirnames + filenames):
                path = here / entry
                name = f"{inside}/{entry}" if inside else entry
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode):
                    self.symlink(name, os.readlink(path))
                elif stat.S_ISDIR(info.st_mode):
                    self.directory(name, stat.S_IMODE(info.st_mode))
                elif stat.S_ISREG(info.st_mode):
                    self.file(name, path.read_bytes(), stat.S_IMODE(info.st_mode))

    def close(self) -> None:
        self._header(_TRAILER, 0, 0)
        self.out.write(b"\0" * (-self.out.tell() % 512))
