"""``kvmbase exec --config FILE``: a program to run, described in a file.

TOML, YAML or JSON, with one ``[exec]`` section::

    [exec]
    program = "/bin/busybox"
    args = ["sha256sum", "data.bin"]
    env = { LANG = "C" }      # default: the caller's environment
    cwd = "/tmp"              # default: the caller's directory
    ram_size = "512MiB"
    trace_syscalls = false
    stats = true
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from kvm_x86.se.process import DEFAULT_RAM
from kvmbase.config import load_config_data, validate_config_model
from kvmbase.units import MemorySize


class ExecSection(BaseModel):
    """What to run and how."""

    model_config = ConfigDict(extra="forbid")

    program: str = Field(min_length=1, description="The static x86-64 executable (or a name "
                         "looked up in PATH).")
    args: list[str] = Field(default_factory=list, description="Its arguments after argv[0].")
    env: dict[str, str] | None = Field(default=None, description="Its environment; the "
                                       "caller's when not given.")
    cwd: str | None = Field(default=None, description="Its working directory; relative to the "
                            "file's directory; the caller's when not given.")
    ram_size: MemorySize = Field(default=DEFAULT_RAM, validate_default=True,
                                 description="Guest RAM, the limit of the process's memory.")
    trace_syscalls: bool = Field(default=False, description="Print each system call to stderr.")
    stats: bool = Field(default=False, description="Print system-call statistics at the end.")


class ExecFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    exec: ExecSection


def load_exec_config(path: str | os.PathLike[str]) -> ExecSection:
    """Read and validate an exec file; a ConfigError names every bad field."""
    source = os.fspath(path)
    section = validate_config_model(ExecFile, load_config_data(source), source=source).exec
    if section.cwd is not None:
        section.cwd = str(Path(source).parent / section.cwd)
    return section
