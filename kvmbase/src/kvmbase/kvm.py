"""``Kvm``: the handle on ``/dev/kvm`` (system-level ioctls)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kvmbase import abi
from kvmbase.errors import KvmbaseError, KvmIoctlError, KvmUnavailableError, errno_name
from kvmbase.ioctl import kvm_ioctl

DEFAULT_DEVICE = "/dev/kvm"

# Module names by which the host's KVM flavour is told apart.
_FLAVOUR_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv")


@dataclass(frozen=True)
class Capability:
    """One ``KVM_CHECK_EXTENSION`` query, for listings."""

    name: str
    number: int
    meaning: str


# The capabilities gem5's Kvm queries, plus the ones kvmbase relies on.
CAPABILITIES: tuple[Capability, ...] = (
    Capability("USER_MEMORY", abi.KVM_CAP_USER_MEMORY, "user memory regions"),
    Capability("SET_TSS_ADDR", abi.KVM_CAP_SET_TSS_ADDR, "x86 TSS address"),
    Capability("EXT_CPUID", abi.KVM_CAP_EXT_CPUID, "KVM_SET_CPUID2 and supported CPUID"),
    Capability("USER_NMI", abi.KVM_CAP_USER_NMI, "NMI injection from user space"),
    Capability("COALESCED_MMIO", abi.KVM_CAP_COALESCED_MMIO, "coalesced MMIO ring page"),
    Capability("COALESCED_PIO", abi.KVM_CAP_COALESCED_PIO, "coalesced port IO"),
    Capability("NR_MEMSLOTS", abi.KVM_CAP_NR_MEMSLOTS, "memory slots per VM"),
    Capability("NR_VCPUS", abi.KVM_CAP_NR_VCPUS, "recommended vCPUs per VM"),
    Capability("MAX_VCPUS", abi.KVM_CAP_MAX_VCPUS, "maximum vCPUs per VM"),
    Capability("ONE_REG", abi.KVM_CAP_ONE_REG, "KVM_GET/SET_ONE_REG"),
    Capability("IRQCHIP", abi.KVM_CAP_IRQCHIP, "in-kernel interrupt controller"),
    Capability("SPLIT_IRQCHIP", abi.KVM_CAP_SPLIT_IRQCHIP, "split x86 IRQ chip"),
    Capability("VCPU_EVENTS", abi.KVM_CAP_VCPU_EVENTS, "KVM_GET/SET_VCPU_EVENTS"),
    Capability("DEBUGREGS", abi.KVM_CAP_DEBUGREGS, "KVM_GET/SET_DEBUGREGS"),
    Capability("XCRS", abi.KVM_CAP_XCRS, "KVM_GET/SET_XCRS"),
    Capability("XSAVE", abi.KVM_CAP_XSAVE, "KVM_GET/SET_XSAVE"),
    Capability("XSAVE2", abi.KVM_CAP_XSAVE2, "XSAVE area size (bytes)"),
    Capability("TSC_CONTROL", abi.KVM_CAP_TSC_CONTROL, "KVM_SET_TSC_KHZ"),
    Capability("GET_TSC_KHZ", abi.KVM_CAP_GET_TSC_KHZ, "KVM_GET_TSC_KHZ"),
    Capability("SYNC_REGS", abi.KVM_CAP_SYNC_REGS, "register sync through kvm_run"),
    Capability("DEVICE_CTRL", abi.KVM_CAP_DEVICE_CTRL, "KVM_CREATE_DEVICE"),
    Capability("IMMEDIATE_EXIT", abi.KVM_CAP_IMMEDIATE_EXIT, "kvm_run.immediate_exit"),
)


class Kvm:
    """An open ``/dev/kvm``: API version, capabilities, VM creation.

    One instance serves any number of VMs; close it (or use ``with``) when done.
    """

    def __init__(self, path: str = DEFAULT_DEVICE) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise KvmUnavailableError.from_os_error(path, exc) from None
        try:
            try:
                self.api_version = self._ioctl(abi.KVM_GET_API_VERSION, action="API version")
            except KvmIoctlError as exc:
                raise KvmUnavailableError(
                    path, f"not a KVM device (KVM_GET_API_VERSION: {errno_name(exc.errno)})",
                    exc.errno,
                ) from None
            if self.api_version != abi.KVM_API_VERSION:
                raise KvmUnavailableError(
                    path,
                    f"KVM API version {self.api_version}, kvmbase speaks "
                    f"{abi.KVM_API_VERSION}",
                )
            self.vcpu_mmap_size = self._ioctl(
                abi.KVM_GET_VCPU_MMAP_SIZE, action="vCPU mapping size"
            )
        except BaseException:
            os.close(self.fd)
            raise
        self._extension_cache: dict[int, int] = {}

    # -- plumbing -------------------------------------------------------
    def _ioctl(self, request: int, arg: object = 0, *, action: str | None = None) -> int:
        return kvm_ioctl(self.fd, request, arg, target=self.path, action=action)

    def ioctl(self, request: int, arg: object = 0, *, action: str | None = None) -> int:
        """A system ioctl on ``/dev/kvm`` (for plugins' own requests)."""
        return self._ioctl(request, arg, action=action)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Kvm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- capabilities ---------------------------------------------------
    def check_extension(self, capability: int) -> int:
        """``KVM_CHECK_EXTENSION``: 0 if absent, else a positive value."""
        cached = self._extension_cache.get(capability)
        if cached is None:
            cached = self._ioctl(
                abi.KVM_CHECK_EXTENSION, capability, action=f"capability {capability}"
            )
            self._extension_cache[capability] = cached
        return cached

    @property
    def cap_user_memory(self) -> bool:
        return self.check_extension(abi.KVM_CAP_USER_MEMORY) != 0

    @property
    def cap_set_tss_address(self) -> bool:
        return self.check_extension(abi.KVM_CAP_SET_TSS_ADDR) != 0

    @property
    def cap_extended_cpuid(self) -> bool:
        return self.check_extension(abi.KVM_CAP_EXT_CPUID) != 0

    @property
    def cap_user_nmi(self) -> bool:
        return self.check_extension(abi.KVM_CAP_USER_NMI) != 0

    @property
    def cap_coalesced_mmio(self) -> int:
        """Page of the vCPU mapping that holds the coalesced MMIO ring; 0: none."""
        return self.check_extension(abi.KVM_CAP_COALESCED_MMIO)

    @property
    def cap_coalesced_pio(self) -> bool:
        return self.check_extension(abi.KVM_CAP_COALESCED_PIO) != 0

    @property
    def cap_num_mem_slots(self) -> int:
        """Memory slots per VM; 0 if the host does not say."""
        return self.check_extension(abi.KVM_CAP_NR_MEMSLOTS)

    @property
    def cap_one_reg(self) -> bool:
        return self.check_extension(abi.KVM_CAP_ONE_REG) != 0

    @property
    def cap_irq_chip(self) -> bool:
        return self.check_extension(abi.KVM_CAP_IRQCHIP) != 0

    @property
    def cap_vcpu_events(self) -> bool:
        return self.check_extension(abi.KVM_CAP_VCPU_EVENTS) != 0

    @property
    def cap_debug_regs(self) -> bool:
        return self.check_extension(abi.KVM_CAP_DEBUGREGS) != 0

    @property
    def cap_xcrs(self) -> bool:
        return self.check_extension(abi.KVM_CAP_XCRS) != 0

    @property
    def cap_xsave(self) -> bool:
        return self.check_extension(abi.KVM_CAP_XSAVE) != 0

    @property
    def cap_immediate_exit(self) -> bool:
        return self.check_extension(abi.KVM_CAP_IMMEDIATE_EXIT) != 0

    @property
    def cap_device_ctrl(self) -> bool:
        return self.check_extension(abi.KVM_CAP_DEVICE_CTRL) != 0

    def capabilities(self) -> dict[str, int]:
        """Every capability of :data:`CAPABILITIES` with its value."""
        return {cap.name: self.check_extension(cap.number) for cap in CAPABILITIES}

    # -- VMs ------------------------------------------------------------
    def create_vm_fd(self, machine_type: int = 0) -> int:
        """``KVM_CREATE_VM``; :class:`kvmbase.vm.KvmVM` wraps the result."""
        return self._ioctl(abi.KVM_CREATE_VM, machine_type, action="creating a VM")


def host_flavour() -> str:
    """Which KVM implementation the host runs: ``kvm_intel``, ``kvm_pvm``, ..."""
    modules = Path("/sys/module")
    for name in _FLAVOUR_MODULES:
        if (modules / name).exists():
            return name
    if (modules / "kvm").exists():
        return "kvm"
    return "unknown"


def host_machine() -> str:
    """The host's machine name as plugins list it (``x86_64``, ``aarch64``)."""
    return platform.machine()


def kvm_usable(path: str = DEFAULT_DEVICE) -> tuple[bool, str]:
    """Whether ``path`` opens as a KVM of the right API, and if not, why."""
    try:
        Kvm(path).close()
    except KvmbaseError as exc:
        return False, str(exc)
    return True, "ok"
