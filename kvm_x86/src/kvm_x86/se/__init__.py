"""Syscall-emulation mode: static x86-64 Linux programs under KVM, user code
at CPL3 natively, system calls served in Python (``kvmbase exec``)."""

from __future__ import annotations

from kvm_x86.se.config import ExecSection, load_exec_config
from kvm_x86.se.elf import ElfError
from kvm_x86.se.process import Fault, Process, exec_program

__all__ = ["ElfError", "ExecSection", "Fault", "Process", "exec_program", "load_exec_config"]
