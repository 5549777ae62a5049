"""Every failure kvmbase reports is one of these exceptions.

Nothing in kvmbase aborts the process or exits: a failed ioctl, a guest the
framework cannot serve, a bad config or a broken checkpoint each become an
exception whose message names what failed, and where a vCPU is involved,
which vCPU, with its state attached.
"""

from __future__ import annotations

import errno as errno_module
import os
from collections.abc import Mapping
from typing import Any


class KvmbaseError(Exception):
    """Base class of every error kvmbase raises."""


class KvmUnavailableError(KvmbaseError):
    """``/dev/kvm`` is missing, cannot be opened, or speaks another API."""

    def __init__(self, path: str, reason: str, errno: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.errno = errno
        super().__init__(f"cannot use {path}: {reason}")

    @classmethod
    def from_os_error(cls, path: str, exc: OSError) -> KvmUnavailableError:
        code = exc.errno or 0
        hints = {
            errno_module.ENOENT: "no such device; is KVM enabled in the kernel "
            "(modules kvm and kvm_intel, kvm_amd or kvm_pvm loaded)?",
            errno_module.EACCES: "permission denied; run as root or add your user "
            "to the group that owns it (usually 'kvm')",
            errno_module.EPERM: "operation not permitted; run as root or add your "
            "user to the group that owns it (usually 'kvm')",
            errno_module.ENXIO: "the KVM module is not loaded or this CPU has no "
            "virtualization support",
            errno_module.ENODEV: "the KVM module is not loaded or this CPU has no "
            "virtualization support",
        }
        reason = hints.get(code, os.strerror(code) if code else str(exc))
        return cls(path, f"{reason} [{errno_name(code)}]", code)


def errno_name(code: int) -> str:
    """``EINVAL``-style name of an errno value."""
    return errno_module.errorcode.get(code, f"errno {code}")


class KvmIoctlError(KvmbaseError):
    """An ioctl on a KVM file descriptor failed."""

    def __init__(
        self,
        ioctl: str,
        errno: int,
        *,
        target: str,
        action: str | None = None,
        vcpu_id: int | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.ioctl = ioctl
        self.errno = errno
        self.target = target
        self.action = action
        self.vcpu_id = vcpu_id
        self.state = state
        what = f" ({action})" if action else ""
        super().__init__(
            f"{ioctl} on {target} failed{what}: {errno_name(errno)} ({os.strerror(errno)})"
        )


class KvmCapabilityError(KvmbaseError):
    """The host's KVM lacks a capability the request needs."""

    def __init__(self, capability: str, needed_for: str) -> None:
        self.capability = capability
        super().__init__(f"the host's KVM lacks {capability}, needed for {needed_for}")


class GuestError(KvmbaseError):
    """The guest did something the framework cannot serve.

    ``state`` carries the vCPU's state dump (``dump()``) taken when it happened.
    """

    def __init__(
        self, message: str, *, vcpu_id: int, state: Mapping[str, Any] | None = None
    ) -> None:
        self.vcpu_id = vcpu_id
        self.state = state
        super().__init__(f"vCPU {vcpu_id}: {message}")


class UnhandledExitError(GuestError):
    """A VM exit that no handler serves."""


class EmulationFailureError(GuestError):
    """KVM's instruction emulator could not execute a guest instruction."""

    def __init__(
        self,
        message: str,
        *,
        vcpu_id: int,
        insn_bytes: bytes,
        pc: int | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.insn_bytes = insn_bytes
        self.pc = pc
        super().__init__(message, vcpu_id=vcpu_id, state=state)


class GuestShutdownError(GuestError):
    """The guest shut the CPU down (a triple fault on x86)."""


class BusError(GuestError):
    """A guest access hit an address where no device answers."""


class ConfigurationError(KvmbaseError):
    """A machine cannot be built as described (beyond schema validation)."""


class PluginError(KvmbaseError):
    """An architecture plugin is missing, broken or cannot run here."""


class CheckpointError(KvmbaseError):
    """A checkpoint cannot be written, or does not match what restores it."""


class SimulationError(KvmbaseError):
    """The simulation host was driven into a state it cannot continue from."""
