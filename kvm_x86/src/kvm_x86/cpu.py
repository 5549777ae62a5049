"""``X86KvmCPU``: the x86-64 vCPU."""

from __future__ import annotations

import shutil
import struct
import subprocess
from typing import Any, ClassVar

from kvm_x86 import abi
from kvm_x86.abi import GPR_NAMES, IO_SPACE_BASE, SEGMENT_FIELDS, SEGMENT_NAMES
from kvm_x86.cpuid import supported_cpuid
from kvm_x86.fpu import FpuSync
from kvm_x86.thread_context import DescriptorTable, Segment, X86ThreadContext
from kvmbase.abi import ffi
from kvmbase.cpu import BaseKvmCPU
from kvmbase.errors import EmulationFailureError
from kvmbase.plugins import dump_sections as plugin_dump_sections

SECTIONS = ("regs", "sregs", "fpu")
# kvm_run.io: direction, size, port, count, data_offset
_IO_EXIT = struct.Struct("<BBHIQ")


def io_address(port: int) -> int:
    """Where port ``port`` appears on the bus (gem5's IO space prefix)."""
    return IO_SPACE_BASE | port


class X86KvmCPU(BaseKvmCPU):
    """Syncs GPRs, segments, control registers and x87/SSE state with KVM;
    serves port IO through the bus at :data:`IO_SPACE_BASE` + port."""

    thread_context_class: ClassVar[type[X86ThreadContext]] = X86ThreadContext
    thread: X86ThreadContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Reused for every sync: the state ioctls allocate nothing.
        self._kvm_regs = ffi.new("struct kvm_regs *")
        self._kvm_sregs = ffi.new("struct kvm_sregs *")
        self._fpu_sync = FpuSync(use_xsave=False)

    def arch_startup(self) -> None:
        # KVM checks EFER against the guest's CPUID (LME needs LM), so the
        # CPUID goes in before any state does.
        self._fpu_sync = FpuSync(use_xsave=self.vm.kvm.cap_xsave)
        table = supported_cpuid(self.vm.kvm)
        self.vcpu_ioctl(abi.KVM_SET_CPUID2, table, action="setting CPUID")

    # -- state sync -----------------------------------------------------
    def update_kvm_state(self) -> None:
        tc = self.thread
        regs = self._kvm_regs
        values = tc.regs
        for name in GPR_NAMES:
            setattr(regs, name, values[name])
        regs.rip = values["rip"]
        regs.rflags = values["rflags"]
        self.vcpu_ioctl(abi.KVM_SET_REGS, regs, action="writing registers")

        sregs = self._kvm_sregs
        for name in SEGMENT_NAMES:
            target = getattr(sregs, name)
            segment = tc.segments[name]
            for field in SEGMENT_FIELDS:
                setattr(target, field, getattr(segment, field))
        sregs.gdt.base, sregs.gdt.limit = tc.gdt.base, tc.gdt.limit
        sregs.idt.base, sregs.idt.limit = tc.idt.base, tc.idt.limit
        for name in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"):
            setattr(sregs, name, values[name])
        for index, word in enumerate(tc.interrupt_bitmap):
            sregs.interrupt_bitmap[index] = word
        self.vcpu_ioctl(abi.KVM_SET_SREGS, sregs, action="writing special registers")

        self._fpu_sync.write(tc.fpu, self.vcpu_ioctl)

    def update_thread_context(self) -> None:
        tc = self.thread
        regs = self._kvm_regs
        self.vcpu_ioctl(abi.KVM_GET_REGS, regs, action="reading registers")
        values = tc.regs
        for name in GPR_NAMES:
            values[name] = getattr(regs, name)
        values["rip"] = regs.rip
        values["rflags"] = regs.rflags

        sregs = self._kvm_sregs
        self.vcpu_ioctl(abi.KVM_GET_SREGS, sregs, action="reading special registers")
        for name in SEGMENT_NAMES:
            source = getattr(sregs, name)
            tc.segments[name] = Segment(
                **{field: getattr(source, field) for field in SEGMENT_FIELDS}
            )
        tc.gdt = DescriptorTable(sregs.gdt.base, sregs.gdt.limit)
        tc.idt = DescriptorTable(sregs.idt.base, sregs.idt.limit)
        for name in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"):
            values[name] = getattr(sregs, name)
        tc.interrupt_bitmap = [int(word) for word in sregs.interrupt_bitmap]

        tc.fpu = self._fpu_sync.read(self.vcpu_ioctl)

    # -- exits ----------------------------------------------------------
    def handle_io_exit(self) -> int:
        """Port IO: each element becomes an access at IO_SPACE_BASE + port."""
        is_write, size, port, count, offset = _IO_EXIT.unpack_from(
            self._run_buffer, self.exit_data_offset
        )
        address = IO_SPACE_BASE | port
        if count == 1:
            return self.do_mmio_access(address, size, is_write, offset)
        ticks = 0
        for index in range(count):
            ticks += self.do_mmio_access(address, size, is_write, offset + index * size)
        return ticks

    def port_address(self, port: int) -> int:
        return IO_SPACE_BASE | port

    def describe_address(self, address: int) -> str:
        if address & IO_SPACE_BASE:
            return f"port {address & 0xFFFF:#x}"
        return super().describe_address(address)

    def emulation_failure(self, insn: bytes) -> EmulationFailureError:
        """Report RIP, the instruction bytes and, with objdump, the instruction."""
        self.vcpu_ioctl(abi.KVM_GET_REGS, self._kvm_regs, action="reading RIP")
        rip = int(self._kvm_regs.rip)
        shown = insn.hex(" ") if insn else "not given"
        text = disassemble(insn, rip)
        message = f"KVM could not emulate the instruction at RIP {rip:#x} (bytes: {shown})"
        if text:
            message += f": {text}"
        return EmulationFailureError(
            message, vcpu_id=self.vcpu_id, insn_bytes=insn, pc=rip, state=self._safe_dump()
        )

    # -- dumps ----------------------------------------------------------
    def dump_sections(self) -> tuple[str, ...]:
        return SECTIONS + tuple(plugin_dump_sections(self))

    def dump(self, *sections: str) -> dict[str, Any]:
        """Structured vCPU state read straight from KVM (the context is untouched)."""
        wanted = sections or self.dump_sections()
        extra = plugin_dump_sections(self)
        result: dict[str, Any] = {}
        for section in wanted:
            if section == "regs":
                regs = ffi.new("struct kvm_regs *")
                self.vcpu_ioctl(abi.KVM_GET_REGS, regs, action="dumping registers")
                result["regs"] = {
                    name: int(getattr(regs, name)) for name in (*GPR_NAMES, "rip", "rflags")
                }
            elif section == "sregs":
                sregs = ffi.new("struct kvm_sregs *")
                self.vcpu_ioctl(abi.KVM_GET_SREGS, sregs, action="dumping special registers")
                result["sregs"] = {
                    **{
                        name: {f: int(getattr(getattr(sregs, name), f)) for f in SEGMENT_FIELDS}
                        for name in SEGMENT_NAMES
                    },
                    "gdt": {"base": int(sregs.gdt.base), "limit": int(sregs.gdt.limit)},
                    "idt": {"base": int(sregs.idt.base), "limit": int(sregs.idt.limit)},
                    **{
                        name: int(getattr(sregs, name))
                        for name in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base")
                    },
                    "interrupt_bitmap": [int(word) for word in sregs.interrupt_bitmap],
                }
            elif section == "fpu":
                state = FpuSync(self._fpu_sync.use_xsave).read(self.vcpu_ioctl)
                result["fpu"] = {
                    "fcw": state.fcw,
                    "fsw": state.fsw,
                    "ftwx": state.ftwx,
                    "last_opcode": state.last_opcode,
                    "last_ip": state.last_ip,
                    "last_dp": state.last_dp,
                    "mxcsr": state.mxcsr,
                    "st": [row[:10].hex() for row in state.fpr],
                    "xmm": [row.hex() for row in state.xmm],
                }
            elif section in extra:
                result[section] = extra[section]()
            else:
                raise KeyError(
                    f"no dump section {section!r}; sections: {', '.join(self.dump_sections())}"
                )
        return result


def disassemble(code: bytes, address: int) -> str:
    """The first instruction of ``code`` in AT&T syntax, if objdump is here."""
    objdump = shutil.which("objdump")
    if not code or objdump is None:
        return ""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".bin") as blob:
        blob.write(code)
        blob.flush()
        try:
            out = subprocess.run(
                [objdump, "-D", "-b", "binary", "-m", "i386:x86-64",
                 f"--adjust-vma={address:#x}", blob.name],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0].strip().endswith(":"):
            return " ".join(parts[2].split())
    return ""
