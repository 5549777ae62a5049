"""Guest RAM: anonymous host mappings the VM registers as memory slots."""

from __future__ import annotations

import mmap

from kvmbase.abi import PAGE_SIZE, ffi


class GuestMemory:
    """A range of guest-physical RAM backed by an anonymous mapping."""

    def __init__(self, base: int, size: int, name: str = "ram") -> None:
        if size <= 0 or size % PAGE_SIZE or base % PAGE_SIZE:
            raise ValueError(
                f"{name}: base {base:#x} and size {size:#x} must be 4 KiB aligned and size > 0"
            )
        self.name = name
        self.base = base
        self.size = size
        self.map = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.view = memoryview(self.map)
        self._cdata = ffi.from_buffer(self.map)
        self.host_address = int(ffi.cast("uintptr_t", self._cdata))

    @property
    def end(self) -> int:
        return self.base + self.size

    def contains(self, address: int, length: int = 1) -> bool:
        return self.base <= address and address + length <= self.end

    def _offset(self, address: int, length: int) -> int:
        if not self.contains(address, length):
            raise IndexError(
                f"{length} bytes at guest {address:#x} fall outside {self.name} "
                f"[{self.base:#x}, {self.end:#x})"
            )
        return address - self.base

    def read(self, address: int, length: int) -> bytes:
        offset = self._offset(address, length)
        return bytes(self.view[offset : offset + length])

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        offset = self._offset(address, len(data))
        self.view[offset : offset + len(data)] = data

    def read_u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def write_u64(self, address: int, value: int) -> None:
        self.write(address, value.to_bytes(8, "little"))

    def close(self) -> None:
        if not self.map.closed:
            ffi.release(self._cdata)
            self.view.release()
            self.map.close()
