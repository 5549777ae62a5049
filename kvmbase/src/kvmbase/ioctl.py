"""The one place where kvmbase calls ``ioctl(2)`` off the exit path.

Calls go through libc via cffi so that integer arguments wider than a C
``int`` (``KVM_SET_TSS_ADDR``) and pointers to cdata pass unchanged; a
failure raises :class:`~kvmbase.errors.KvmIoctlError` naming the request, the
errno, what was being done and on which file descriptor.
"""

from __future__ import annotations

from typing import Any

from kvmbase.abi import ffi, ioctl_name, libc
from kvmbase.errors import KvmIoctlError

_ULONG = "unsigned long"
_VOIDP = "void *"


def kvm_ioctl(
    fd: int,
    request: int,
    arg: Any = 0,
    *,
    target: str,
    action: str | None = None,
    vcpu_id: int | None = None,
) -> int:
    """Issue ``ioctl(fd, request, arg)``; return its non-negative result.

    ``arg`` is an int, or a cdata pointer to the request's struct.
    """
    carg = ffi.cast(_ULONG, arg) if isinstance(arg, int) else ffi.cast(_VOIDP, arg)
    result: int = libc.ioctl(fd, request, carg)
    if result < 0:
        raise KvmIoctlError(
            ioctl_name(request),
            ffi.errno,
            target=target,
            action=action,
            vcpu_id=vcpu_id,
        )
    return result
