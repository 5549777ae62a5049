"""The x86 part of the KVM ABI (``asm/kvm.h``), on the core's cffi FFI."""

from __future__ import annotations

from typing import Final

from kvmbase import abi
from kvmbase.abi import ffi, ior, iow, iowr

ffi.cdef(
    """
    struct kvm_regs {
        __u64 rax, rbx, rcx, rdx;
        __u64 rsi, rdi, rsp, rbp;
        __u64 r8,  r9,  r10, r11;
        __u64 r12, r13, r14, r15;
        __u64 rip, rflags;
    };

    struct kvm_segment {
        __u64 base;
        __u32 limit;
        __u16 selector;
        __u8  type;
        __u8  present, dpl, db, s, l, g, avl;
        __u8  unusable;
        __u8  padding;
    };

    struct kvm_dtable {
        __u64 base;
        __u16 limit;
        __u16 padding[3];
    };

    struct kvm_sregs {
        struct kvm_segment cs, ds, es, fs, gs, ss;
        struct kvm_segment tr, ldt;
        struct kvm_dtable gdt, idt;
        __u64 cr0, cr2, cr3, cr4, cr8;
        __u64 efer;
        __u64 apic_base;
        __u64 interrupt_bitmap[4];
    };

    struct kvm_fpu {
        __u8  fpr[8][16];
        __u16 fcw;
        __u16 fsw;
        __u8  ftwx;
        __u8  pad1;
        __u16 last_opcode;
        __u64 last_ip;
        __u64 last_dp;
        __u8  xmm[16][16];
        __u32 mxcsr;
        __u32 pad2;
    };

    struct kvm_xsave {
        __u32 region[1024];
    };

    struct kvm_cpuid_entry2 {
        __u32 function;
        __u32 index;
        __u32 flags;
        __u32 eax;
        __u32 ebx;
        __u32 ecx;
        __u32 edx;
        __u32 padding[3];
    };

    struct kvm_cpuid2 {
        __u32 nent;
        __u32 padding;
        struct kvm_cpuid_entry2 entries[];
    };
    """
)

KVM_GET_SUPPORTED_CPUID: Final = iowr(abi.KVMIO, 0x05, "struct kvm_cpuid2")
KVM_GET_REGS: Final = ior(abi.KVMIO, 0x81, "struct kvm_regs")
KVM_SET_REGS: Final = iow(abi.KVMIO, 0x82, "struct kvm_regs")
KVM_GET_SREGS: Final = ior(abi.KVMIO, 0x83, "struct kvm_sregs")
KVM_SET_SREGS: Final = iow(abi.KVMIO, 0x84, "struct kvm_sregs")
KVM_GET_FPU: Final = ior(abi.KVMIO, 0x8C, "struct kvm_fpu")
KVM_SET_FPU: Final = iow(abi.KVMIO, 0x8D, "struct kvm_fpu")
KVM_SET_CPUID2: Final = iow(abi.KVMIO, 0x90, "struct kvm_cpuid2")
KVM_GET_XSAVE: Final = ior(abi.KVMIO, 0xA4, "struct kvm_xsave")
KVM_SET_XSAVE: Final = iow(abi.KVMIO, 0xA5, "struct kvm_xsave")

abi.register_ioctl_names(
    {
        "KVM_GET_SUPPORTED_CPUID": KVM_GET_SUPPORTED_CPUID,
        "KVM_GET_REGS": KVM_GET_REGS,
        "KVM_SET_REGS": KVM_SET_REGS,
        "KVM_GET_SREGS": KVM_GET_SREGS,
        "KVM_SET_SREGS": KVM_SET_SREGS,
        "KVM_GET_FPU": KVM_GET_FPU,
        "KVM_SET_FPU": KVM_SET_FPU,
        "KVM_SET_CPUID2": KVM_SET_CPUID2,
        "KVM_GET_XSAVE": KVM_GET_XSAVE,
        "KVM_SET_XSAVE": KVM_SET_XSAVE,
    }
)

#: gem5 puts the x86 IO port space at this physical address prefix.
IO_SPACE_BASE: Final = 0x8000_0000_0000_0000

GPR_NAMES: Final = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)
SEGMENT_NAMES: Final = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")
SEGMENT_FIELDS: Final = (
    "base", "limit", "selector", "type", "present", "dpl", "db", "s", "l", "g", "avl",
    "unusable",
)
CONTROL_NAMES: Final = ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base")
