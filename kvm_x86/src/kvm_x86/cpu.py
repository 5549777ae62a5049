"""``X86KvmCPU``: the x86-64 vCPU."""

from __future__ import annotations

import logging
import shutil
import struct
import subprocess
from typing import Any, ClassVar

import kvm_x86.parts  # noqa: F401 - registers every state part
from kvm_x86.abi import IO_SPACE_BASE
from kvm_x86.interrupts import InterruptDelivery
from kvm_x86.state import PART_CLASSES, StatePart
from kvm_x86.thread_context import X86ThreadContext
from kvmbase.cpu import BaseKvmCPU
from kvmbase.errors import EmulationFailureError

log = logging.getLogger(__name__)
# kvm_run.io: direction, size, port, count, data_offset
_IO_EXIT = struct.Struct("<BBHIQ")


def io_address(port: int) -> int:
    """Where port ``port`` appears on the bus (gem5's IO space prefix)."""
    return IO_SPACE_BASE | port


class X86KvmCPU(InterruptDelivery, BaseKvmCPU):
    """Syncs the x86 state parts (:mod:`kvm_x86.parts`) with KVM; serves port
    IO through the bus at :data:`IO_SPACE_BASE` + port."""

    thread_context_class: ClassVar[type[X86ThreadContext]] = X86ThreadContext
    thread: X86ThreadContext
    #: sync vector state through the XSAVE area (x86.use_xsave)
    use_xsave: bool = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Each part keeps its ioctl buffers: a sync allocates nothing.
        self.parts: list[StatePart] = [part(self) for part in PART_CLASSES]
        #: parts this host cannot sync, with the reason
        self.unsupported_parts: dict[str, str] = {}

    def arch_startup(self) -> None:
        kvm = self.vm.kvm
        kept = []
        for part in self.parts:
            supported, why = part.supported(kvm)
            if supported:
                kept.append(part)
            else:
                self.unsupported_parts[part.name] = why
                log.info("%s: %s state is not synced: %s", self.name, part.name, why)
        self.parts = kept

    def part(self, name: str) -> StatePart:
        """The state part called ``name``."""
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"no x86 state part {name!r}")

    # -- state sync -----------------------------------------------------
    def update_kvm_state(self) -> None:
        tc = self.thread
        for part in self.parts:
            part.write_from(tc)

    def update_thread_context(self) -> None:
        tc = self.thread
        for part in self.parts:
            part.read_into(tc)

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
        rip = int(self.part("regs").dump()["rip"])
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
        return self.collect_dump_sections(tuple(part.name for part in self.parts))

    def dump(self, *sections: str) -> dict[str, Any]:
        """Structured vCPU state read straight from KVM (the context is untouched)."""
        return self.collect_dump(sections, {part.name: part.dump for part in self.parts})


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
