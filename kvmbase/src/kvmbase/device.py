"""``KvmDevice``: an in-kernel device made with ``KVM_CREATE_DEVICE``."""

from __future__ import annotations

import os

from kvmbase import abi
from kvmbase.abi import ffi
from kvmbase.errors import KvmbaseError
from kvmbase.ioctl import kvm_ioctl


class KvmDevice:
    """A device fd and its attributes (``KVM_{SET,GET,HAS}_DEVICE_ATTR``)."""

    def __init__(self, fd: int, device_type: int) -> None:
        self.fd = fd
        self.device_type = device_type

    def _attr_ioctl(self, request: int, group: int, attribute: int, address: int) -> int:
        if self.fd < 0:
            raise KvmbaseError(f"device of type {self.device_type} is closed")
        attr = ffi.new("struct kvm_device_attr *")
        attr.group, attr.attr, attr.addr = group, attribute, address
        return kvm_ioctl(
            self.fd,
            request,
            attr,
            target=f"device of type {self.device_type}",
            action=f"attribute group {group} attr {attribute:#x}",
        )

    def has_attr(self, group: int, attribute: int) -> bool:
        """Whether the device knows the attribute (``KVM_HAS_DEVICE_ATTR``)."""
        try:
            self._attr_ioctl(abi.KVM_HAS_DEVICE_ATTR, group, attribute, 0)
        except KvmbaseError:
            return False
        return True

    def get_attr(self, group: int, attribute: int) -> int:
        """Read a 64-bit attribute."""
        value = ffi.new("uint64_t *")
        self._attr_ioctl(
            abi.KVM_GET_DEVICE_ATTR, group, attribute, int(ffi.cast("uintptr_t", value))
        )
        return int(value[0])

    def set_attr(self, group: int, attribute: int, value: int) -> None:
        """Write a 64-bit attribute."""
        cell = ffi.new("uint64_t *", value)
        self._attr_ioctl(
            abi.KVM_SET_DEVICE_ATTR, group, attribute, int(ffi.cast("uintptr_t", cell))
        )

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
