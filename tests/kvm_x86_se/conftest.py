"""Fixtures of the syscall-emulation tests: busybox, the test programs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import skip_host_lacks

BUSYBOX = "/bin/busybox"
PROGRAMS = Path(__file__).parent / "programs"


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: bytes
    stderr: bytes


def run_native(argv: Sequence[str], cwd: Path | None = None, stdin: bytes = b"") -> Outcome:
    done = subprocess.run(list(argv), cwd=cwd, input=stdin, capture_output=True, timeout=120)
    return Outcome(done.returncode, done.stdout, done.stderr)


def run_exec(
    argv: Sequence[str], cwd: Path | None = None, stdin: bytes = b"", options: Sequence[str] = ()
) -> Outcome:
    """``kvmbase exec [options] argv...`` in a fresh Python process."""
    command = [sys.executable, "-c", "from kvmbase.cli import main; main()", "exec",
               *options, *argv]
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, timeout=300)
    return Outcome(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def busybox() -> str:
    if not os.path.isfile(BUSYBOX):
        skip_host_lacks("busybox-static (apt-get install busybox-static)")
    from kvm_x86.se.elf import PT_INTERP, parse_segments

    _type, _entry, _phoff, segments = parse_segments(Path(BUSYBOX).read_bytes(), BUSYBOX)
    if any(segment.type == PT_INTERP for segment in segments):
        skip_host_lacks("busybox-static (apt-get install busybox-static): /bin/busybox is dynamic")
    return BUSYBOX


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The assembly test programs, linked static with ``as`` and ``ld``."""
    missing = [tool for tool in ("as", "ld") if shutil.which(tool) is None]
    if missing:
        skip_host_lacks(f"binutils ({', '.join(missing)}) to build the test programs")
    out = tmp_path_factory.mktemp("se-programs")
    built = {}
    for source in sorted(PROGRAMS.glob("*.S")):
        obj = out / f"{source.stem}.o"
        exe = out / source.stem
        subprocess.run(["as", "--64", "-o", str(obj), str(source)], check=True)
        # *_pie.S: a static PIE (ET_DYN without an interpreter)
        pie = ["-pie", "--no-dynamic-linker"] if source.stem.endswith("_pie") else []
        subprocess.run(["ld", "-static", *pie, "-o", str(exe), str(obj)], check=True)
        built[source.stem] = exe
    return built
