"""Boot the arm64 guest under QEMU (TCG, EL2) and read what it reports.

The console is the only channel: ``/init`` prints ``ARMGUEST-INIT`` when it
starts and ``ARMGUEST-RC=<status>`` at the end; the in-guest pytest plugin
prints its results between ``ARMGUEST-RESULTS-BEGIN`` and
``ARMGUEST-RESULTS-END sha256=...``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from armguest.errors import HarnessError, HostLacksError

#: The machine: EL2 so the guest kernel offers KVM; GICv3; ``-cpu max`` with
#: the cheap pointer-auth algorithm (QARMA5 emulation makes boots 3x slower).
QEMU_MACHINE = (
    "-M", "virt,virtualization=on,gic-version=3",
    "-cpu", "max,pauth-impdef=on",
    "-smp", "2",
    "-m", "1024",
    "-nographic", "-no-reboot", "-nic", "none",
)  # fmt: skip

KERNEL_COMMAND_LINE = "console=ttyAMA0 rdinit=/init panic=-1 quiet"

DEFAULT_TIMEOUT = 900.0


@dataclass
class GuestRun:
    """What one boot produced."""

    console: str
    wall_seconds: float
    status: int | None  # the job's exit status (ARMGUEST-RC), None if never printed
    init_uptime: float | None  # guest uptime when /init started
    results: dict[str, Any] | None = None  # the in-guest report, when there is one
    command: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds, by phase
    #: Why the run did not end normally (timeout, crash); then ``results``
    #: holds what the guest reported test by test before that.
    problem: str = ""

    @property
    def tests(self) -> list[dict[str, Any]]:
        return list(self.results["tests"]) if self.results else []


def qemu_binary() -> str:
    found = shutil.which("qemu-system-aarch64")
    if found is None:
        raise HostLacksError("qemu-system-aarch64 (Debian package qemu-system-arm)")
    return found


def _parse_results(console: str) -> dict[str, Any] | None:
    begin = console.rfind("ARMGUEST-RESULTS-BEGIN")
    if begin < 0:
        return None
    end = re.search(r"ARMGUEST-RESULTS-END sha256=([0-9a-f]{64})", console[begin:])
    if end is None:
        raise HarnessError("the guest's results on the console are cut short", console)
    chunks = re.findall(r"ARMGUEST-R:([A-Za-z0-9+/=]+)", console[begin : begin + end.start()])
    payload = base64.b64decode("".join(chunks))
    if hashlib.sha256(payload).hexdigest() != end.group(1):
        raise HarnessError("the guest's results were garbled on the console", console)
    document: dict[str, Any] = json.loads(payload)
    return document


def _b64_text(value: str) -> str:
    return base64.b64decode(value).decode(errors="replace")


def _parse_stream(console: str, problem: str) -> dict[str, Any] | None:
    """The per-test lines of a run that did not finish: results so far, plus the test
    that was running, failed with ``problem``."""
    tests: dict[str, dict[str, Any]] = {}
    running: str | None = None
    for line in console.splitlines():
        if line.startswith("ARMGUEST-START:"):
            running = _b64_text(line.removeprefix("ARMGUEST-START:").strip())
        elif line.startswith("ARMGUEST-T:"):
            try:
                entry = json.loads(_b64_text(line.removeprefix("ARMGUEST-T:").strip()))
            except ValueError:
                continue
            tests[str(entry["nodeid"])] = entry
            if entry["nodeid"] == running:
                running = None
    if running is not None:
        tests[running] = {
            "nodeid": running,
            "outcome": "failed",
            "reason": "",
            "longrepr": f"no result: {problem} while this test was running",
            "duration": 0.0,
        }
    if not tests:
        return None
    return {"exitstatus": None, "uptime_start": -1, "uptime_end": -1, "tests": list(tests.values())}


def boot(kernel: Path, initrd: Path, *, timeout: float = DEFAULT_TIMEOUT) -> GuestRun:
    """Boot ``kernel`` with ``initrd``, wait for power-off, parse the console.

    A run that times out or ends without the final report still returns what
    the guest reported test by test, with :attr:`GuestRun.problem` set; only a
    run that reported nothing at all raises :class:`HarnessError`.
    """
    command = [
        qemu_binary(), *QEMU_MACHINE,
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", KERNEL_COMMAND_LINE,
    ]  # fmt: skip
    start = time.monotonic()
    problem = ""
    try:
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        output = completed.stdout
        if completed.returncode != 0:
            problem = f"qemu-system-aarch64 exited {completed.returncode}"
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, bytes) else b""
        problem = f"the guest did not power off within {timeout:.0f} s (ARMGUEST_TIMEOUT)"
    wall = time.monotonic() - start
    console = output.decode(errors="replace").replace("\r\n", "\n")
    status_match = re.search(r"ARMGUEST-RC=(\d+)", console)
    init_match = re.search(r"ARMGUEST-INIT uptime=([0-9.]+)", console)
    run = GuestRun(
        console=console,
        wall_seconds=wall,
        status=int(status_match.group(1)) if status_match else None,
        init_uptime=float(init_match.group(1)) if init_match else None,
        command=command,
    )
    if run.status is None and not problem:
        problem = "the guest powered off without reporting the job's status"
    results = None if problem else _parse_results(console)
    if results is None and run.status is not None and not problem:
        problem = f"the in-guest pytest ended with status {run.status} without a report"
    if problem:
        results = _parse_stream(console, problem)
        if results is None:
            raise HarnessError(problem, console)
    run.results, run.problem = results, problem
    return run


def timeout_from_env() -> float:
    """``ARMGUEST_TIMEOUT`` seconds, or the default."""
    value = os.environ.get("ARMGUEST_TIMEOUT")
    return float(value) if value else DEFAULT_TIMEOUT
