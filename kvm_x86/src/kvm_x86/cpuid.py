"""CPUID for the guest: for now, what the host's KVM supports."""

from __future__ import annotations

import weakref
from typing import Any

from kvm_x86 import abi
from kvmbase.abi import ffi
from kvmbase.errors import KvmIoctlError
from kvmbase.kvm import Kvm

_E2BIG = 7
_cache: weakref.WeakKeyDictionary[Kvm, Any] = weakref.WeakKeyDictionary()


def supported_cpuid(kvm: Kvm) -> Any:
    """``KVM_GET_SUPPORTED_CPUID`` as a ``struct kvm_cpuid2 *`` (cached per Kvm)."""
    cached = _cache.get(kvm)
    if cached is not None:
        return cached
    entries = 64
    while True:
        table = ffi.new("struct kvm_cpuid2 *", {"nent": entries, "entries": entries})
        table.nent = entries
        try:
            kvm.ioctl(abi.KVM_GET_SUPPORTED_CPUID, table, action="supported CPUID")
        except KvmIoctlError as exc:
            if exc.errno == _E2BIG and entries < 4096:
                entries *= 2
                continue
            raise
        _cache[kvm] = table
        return table
