"""The architecture-neutral part of ``linux/kvm.h``, declared through cffi.

cffi runs here in ABI mode, in-line: the declarations below are parsed at
import time and no C compiler is needed to install kvmbase.  The exit path
does not call through cffi at all (``KVM_RUN`` goes through ``fcntl.ioctl``
and ``kvm_run`` is read through a cdata view of the vCPU mapping), so an
out-of-line API-mode module would buy nothing there; ``bench/`` measures
both.  The sizes and offsets are checked against the host's own
``<linux/kvm.h>`` by ``tests/kvmbase/test_abi_layout.py``.

Architecture plugins extend the same ``ffi`` with :func:`include` so that
their structs can name these ones.
"""

from __future__ import annotations

import sys
from typing import Final

import cffi

ffi: Final = cffi.FFI()

ffi.cdef(
    """
    typedef uint8_t __u8;
    typedef uint16_t __u16;
    typedef uint32_t __u32;
    typedef uint64_t __u64;
    typedef int32_t __s32;
    typedef int64_t __s64;

    struct kvm_userspace_memory_region {
        __u32 slot;
        __u32 flags;
        __u64 guest_phys_addr;
        __u64 memory_size;
        __u64 userspace_addr;
    };

    struct kvm_coalesced_mmio_zone {
        __u64 addr;
        __u32 size;
        union {
            __u32 pad;
            __u32 pio;
        };
    };

    struct kvm_coalesced_mmio {
        __u64 phys_addr;
        __u32 len;
        union {
            __u32 pad;
            __u32 pio;
        };
        __u8 data[8];
    };

    struct kvm_coalesced_mmio_ring {
        __u32 first, last;
        struct kvm_coalesced_mmio coalesced_mmio[];
    };

    struct kvm_one_reg {
        __u64 id;
        __u64 addr;
    };

    struct kvm_signal_mask {
        __u32 len;
        __u8 sigset[];
    };

    struct kvm_irq_level {
        union {
            __u32 irq;
            __s32 status;
        };
        __u32 level;
    };

    struct kvm_interrupt {
        __u32 irq;
    };

    struct kvm_create_device {
        __u32 type;
        __u32 fd;
        __u32 flags;
    };

    struct kvm_device_attr {
        __u32 flags;
        __u32 group;
        __u64 attr;
        __u64 addr;
    };

    struct kvm_run {
        __u8 request_interrupt_window;
        __u8 immediate_exit;
        __u8 padding1[6];

        __u32 exit_reason;
        __u8 ready_for_interrupt_injection;
        __u8 if_flag;
        __u16 flags;

        __u64 cr8;
        __u64 apic_base;

        union {
            struct {
                __u64 hardware_exit_reason;
            } hw;
            struct {
                __u64 hardware_entry_failure_reason;
                __u32 cpu;
            } fail_entry;
            struct {
                __u32 exception;
                __u32 error_code;
            } ex;
            struct {
                __u8 direction;
                __u8 size;
                __u16 port;
                __u32 count;
                __u64 data_offset;
            } io;
            struct {
                __u64 phys_addr;
                __u8 data[8];
                __u32 len;
                __u8 is_write;
            } mmio;
            struct {
                __u64 nr;
                __u64 args[6];
                __u64 ret;
                __u32 longmode;
                __u32 pad;
            } hypercall;
            struct {
                __u32 suberror;
                __u32 ndata;
                __u64 data[16];
            } internal;
            struct {
                __u32 suberror;
                __u32 ndata;
                __u64 flags;
                __u8 insn_size;
                __u8 insn_bytes[15];
            } emulation_failure;
            struct {
                __u32 type;
                __u32 ndata;
                __u64 data[16];
            } system_event;
            char padding[256];
        };

        __u64 kvm_valid_regs;
        __u64 kvm_dirty_regs;
        union {
            char padding[2048];
        } s;
    };
    """,
    packed=False,
)

# -- ioctl request builders (asm-generic/ioctl.h) ---------------------------

_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE = 0
_IOC_WRITE = 1
_IOC_READ = 2

KVMIO: Final = 0xAE


def _ioc(direction: int, type_: int, nr: int, size: int) -> int:
    if size >= 1 << _IOC_SIZEBITS:
        raise ValueError(f"ioctl argument of {size} bytes does not fit the size field")
    return (
        (direction << _IOC_DIRSHIFT)
        | (type_ << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _size(ctype: str | int) -> int:
    return ctype if isinstance(ctype, int) else ffi.sizeof(ctype)


def io(type_: int, nr: int) -> int:
    """``_IO(type, nr)``: a request with no argument struct."""
    return _ioc(_IOC_NONE, type_, nr, 0)


def ior(type_: int, nr: int, ctype: str | int) -> int:
    """``_IOR(type, nr, T)``: the kernel writes a ``T``."""
    return _ioc(_IOC_READ, type_, nr, _size(ctype))


def iow(type_: int, nr: int, ctype: str | int) -> int:
    """``_IOW(type, nr, T)``: the kernel reads a ``T``."""
    return _ioc(_IOC_WRITE, type_, nr, _size(ctype))


def iowr(type_: int, nr: int, ctype: str | int) -> int:
    """``_IOWR(type, nr, T)``: the kernel reads and writes a ``T``."""
    return _ioc(_IOC_READ | _IOC_WRITE, type_, nr, _size(ctype))


# -- system ioctls -----------------------------------------------------------
KVM_GET_API_VERSION: Final = io(KVMIO, 0x00)
KVM_CREATE_VM: Final = io(KVMIO, 0x01)
KVM_CHECK_EXTENSION: Final = io(KVMIO, 0x03)
KVM_GET_VCPU_MMAP_SIZE: Final = io(KVMIO, 0x04)

# -- VM ioctls ---------------------------------------------------------------
KVM_CREATE_VCPU: Final = io(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION: Final = iow(KVMIO, 0x46, "struct kvm_userspace_memory_region")
KVM_SET_TSS_ADDR: Final = io(KVMIO, 0x47)
KVM_CREATE_IRQCHIP: Final = io(KVMIO, 0x60)
KVM_IRQ_LINE: Final = iow(KVMIO, 0x61, "struct kvm_irq_level")
KVM_REGISTER_COALESCED_MMIO: Final = iow(KVMIO, 0x67, "struct kvm_coalesced_mmio_zone")
KVM_UNREGISTER_COALESCED_MMIO: Final = iow(KVMIO, 0x68, "struct kvm_coalesced_mmio_zone")
KVM_CREATE_DEVICE: Final = iowr(KVMIO, 0xE0, "struct kvm_create_device")

# -- device ioctls -----------------------------------------------------------
KVM_SET_DEVICE_ATTR: Final = iow(KVMIO, 0xE1, "struct kvm_device_attr")
KVM_GET_DEVICE_ATTR: Final = iow(KVMIO, 0xE2, "struct kvm_device_attr")
KVM_HAS_DEVICE_ATTR: Final = iow(KVMIO, 0xE3, "struct kvm_device_attr")

# -- vCPU ioctls -------------------------------------------------------------
KVM_RUN: Final = io(KVMIO, 0x80)
KVM_INTERRUPT: Final = iow(KVMIO, 0x86, "struct kvm_interrupt")
KVM_SET_SIGNAL_MASK: Final = iow(KVMIO, 0x8B, "struct kvm_signal_mask")
KVM_NMI: Final = io(KVMIO, 0x9A)
KVM_GET_ONE_REG: Final = iow(KVMIO, 0xAB, "struct kvm_one_reg")
KVM_SET_ONE_REG: Final = iow(KVMIO, 0xAC, "struct kvm_one_reg")

KVM_API_VERSION: Final = 12

# -- capabilities ------------------------------------------------------------
KVM_CAP_IRQCHIP: Final = 0
KVM_CAP_USER_MEMORY: Final = 3
KVM_CAP_SET_TSS_ADDR: Final = 4
KVM_CAP_EXT_CPUID: Final = 7
KVM_CAP_NR_VCPUS: Final = 9
KVM_CAP_NR_MEMSLOTS: Final = 10
KVM_CAP_COALESCED_MMIO: Final = 15
KVM_CAP_USER_NMI: Final = 22
KVM_CAP_VCPU_EVENTS: Final = 41
KVM_CAP_DEBUGREGS: Final = 50
KVM_CAP_XSAVE: Final = 55
KVM_CAP_XCRS: Final = 56
KVM_CAP_TSC_CONTROL: Final = 60
KVM_CAP_GET_TSC_KHZ: Final = 61
KVM_CAP_MAX_VCPUS: Final = 66
KVM_CAP_ONE_REG: Final = 70
KVM_CAP_SYNC_REGS: Final = 74
KVM_CAP_DEVICE_CTRL: Final = 89
KVM_CAP_SPLIT_IRQCHIP: Final = 121
KVM_CAP_IMMEDIATE_EXIT: Final = 136
KVM_CAP_COALESCED_PIO: Final = 162
KVM_CAP_XSAVE2: Final = 208

# -- memory region flags -----------------------------------------------------
KVM_MEM_LOG_DIRTY_PAGES: Final = 1 << 0
KVM_MEM_READONLY: Final = 1 << 1

# -- exit reasons and their details ------------------------------------------
KVM_EXIT_UNKNOWN: Final = 0
KVM_EXIT_EXCEPTION: Final = 1
KVM_EXIT_IO: Final = 2
KVM_EXIT_HYPERCALL: Final = 3
KVM_EXIT_DEBUG: Final = 4
KVM_EXIT_HLT: Final = 5
KVM_EXIT_MMIO: Final = 6
KVM_EXIT_IRQ_WINDOW_OPEN: Final = 7
KVM_EXIT_SHUTDOWN: Final = 8
KVM_EXIT_FAIL_ENTRY: Final = 9
KVM_EXIT_INTR: Final = 10
KVM_EXIT_INTERNAL_ERROR: Final = 17
KVM_EXIT_SYSTEM_EVENT: Final = 24

KVM_EXIT_IO_IN: Final = 0
KVM_EXIT_IO_OUT: Final = 1

KVM_INTERNAL_ERROR_EMULATION: Final = 1
KVM_INTERNAL_ERROR_SIMUL_EX: Final = 2
KVM_INTERNAL_ERROR_DELIVERY_EV: Final = 3
KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: Final = 4
KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES: Final = 1 << 0

KVM_SYSTEM_EVENT_SHUTDOWN: Final = 1
KVM_SYSTEM_EVENT_RESET: Final = 2
KVM_SYSTEM_EVENT_CRASH: Final = 3

# -- ONE_REG id fields -------------------------------------------------------
KVM_REG_ARCH_MASK: Final = 0xFF00000000000000
KVM_REG_SIZE_SHIFT: Final = 52
KVM_REG_SIZE_MASK: Final = 0x00F0000000000000
KVM_REG_SIZE_U8: Final = 0x0000000000000000
KVM_REG_SIZE_U16: Final = 0x0010000000000000
KVM_REG_SIZE_U32: Final = 0x0020000000000000
KVM_REG_SIZE_U64: Final = 0x0030000000000000
KVM_REG_SIZE_U128: Final = 0x0040000000000000
KVM_REG_SIZE_U256: Final = 0x0050000000000000
KVM_REG_SIZE_U512: Final = 0x0060000000000000
KVM_REG_SIZE_U1024: Final = 0x0070000000000000


def one_reg_size(reg_id: int) -> int:
    """The size in bytes of the register a ONE_REG id names."""
    return 1 << ((reg_id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT)


# The ring fills the page after its two indices (KVM_COALESCED_MMIO_MAX).
PAGE_SIZE: Final = 4096
KVM_COALESCED_MMIO_MAX: Final = (
    PAGE_SIZE - ffi.sizeof("struct kvm_coalesced_mmio_ring")
) // ffi.sizeof("struct kvm_coalesced_mmio")

# The kernel's sigset for KVM_SET_SIGNAL_MASK is 64 bits on every architecture.
KERNEL_SIGSET_BYTES: Final = 8

_CORE_IOCTLS: Final = (
    "KVM_GET_API_VERSION", "KVM_CREATE_VM", "KVM_CHECK_EXTENSION",
    "KVM_GET_VCPU_MMAP_SIZE", "KVM_CREATE_VCPU", "KVM_SET_USER_MEMORY_REGION",
    "KVM_SET_TSS_ADDR", "KVM_CREATE_IRQCHIP", "KVM_IRQ_LINE",
    "KVM_REGISTER_COALESCED_MMIO", "KVM_UNREGISTER_COALESCED_MMIO",
    "KVM_CREATE_DEVICE", "KVM_SET_DEVICE_ATTR", "KVM_GET_DEVICE_ATTR",
    "KVM_HAS_DEVICE_ATTR", "KVM_RUN", "KVM_INTERRUPT", "KVM_SET_SIGNAL_MASK",
    "KVM_NMI", "KVM_GET_ONE_REG", "KVM_SET_ONE_REG",
)
ioctl_names: dict[int, str] = {globals()[name]: name for name in _CORE_IOCTLS}


def register_ioctl_names(names: dict[str, int]) -> None:
    """Let error messages name a plugin's ioctl requests."""
    for name, value in names.items():
        ioctl_names[value] = name


def ioctl_name(request: int) -> str:
    """The symbolic name of an ioctl request, or its number in hex."""
    return ioctl_names.get(request, f"ioctl {request:#x}")


def include(plugin_ffi: cffi.FFI) -> None:
    """Make ``plugin_ffi`` know the core declarations (``FFI.include``)."""
    plugin_ffi.include(ffi)


ffi.cdef("int ioctl(int fd, unsigned long request, ...);")
libc: Final = ffi.dlopen(None)

assert sys.byteorder == "little", "kvmbase supports little-endian hosts only"
