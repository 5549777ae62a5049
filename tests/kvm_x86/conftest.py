"""Fixtures of the x86 KVM tests: guests built once, machines, recording devices.

Guests are GNU as sources in ``guests/``.  Each is assembled by
:func:`x86_machines.build_guest` from a small wrapper that sets assembler
symbols (``RING`` and whatever a test needs) and includes ``ring3.inc``
then the guest, so one source serves CPL0 and CPL3 variants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from x86_machines import LOAD_ADDRESS, build_guest, machine_config, machine_from, require_binutils

from kvmbase import Machine
from kvmbase.sim.bus import Device

#: every guest variant the tests run: name -> (source, assembler symbols)
GUEST_BUILDS: dict[str, tuple[str, dict[str, int]]] = {
    "io-ring0": ("io.S", {"RING": 0}),
    "io-ring3": ("io.S", {"RING": 3}),
    "string_io-ring0": ("string_io.S", {"RING": 0}),
    "string_io-ring3": ("string_io.S", {"RING": 3}),
    "mmio-ring0": ("mmio.S", {"RING": 0}),
    "mmio-ring3": ("mmio.S", {"RING": 3}),
    "coalesced-ring0": ("coalesced.S", {"RING": 0, "LOOPS": 8}),
    "coalesced-ring3": ("coalesced.S", {"RING": 3, "LOOPS": 8}),
    "coalesced_many-ring0": ("coalesced.S", {"RING": 0, "LOOPS": 400}),
    "coalesced_many-ring3": ("coalesced.S", {"RING": 3, "LOOPS": 400}),
    "halt": ("halt.S", {"RING": 0}),
    "triple_fault": ("triple_fault.S", {"RING": 0}),
    "bad_out": ("bad_access.S", {"RING": 0, "KIND": 0, "PORT": 0xF0, "ADDRESS": 0}),
    "bad_out_below": ("bad_access.S", {"RING": 0, "KIND": 0, "PORT": 0xDF, "ADDRESS": 0}),
    "bad_in": ("bad_access.S", {"RING": 0, "KIND": 1, "PORT": 0x80, "ADDRESS": 0}),
    "bad_mmio_write": ("bad_access.S", {"RING": 0, "KIND": 2, "PORT": 0, "ADDRESS": 0xD0008000}),
    "bad_mmio_read": ("bad_access.S", {"RING": 0, "KIND": 3, "PORT": 0, "ADDRESS": 0xD0003000}),
    "bad_coalesced": ("bad_access.S", {"RING": 0, "KIND": 2, "PORT": 0, "ADDRESS": 0xD0001010}),
    "emulation_failure": ("emulation_failure.S", {"RING": 0}),
    "regs": ("regs.S", {"RING": 0}),
    "sysregs": ("sysregs.S", {"RING": 0}),
    "sse": ("sse.S", {"RING": 3}),
}


@pytest.fixture(scope="session")
def guests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every guest of :data:`GUEST_BUILDS`, built once per session."""
    require_binutils()
    out = tmp_path_factory.mktemp("x86-guests")
    return {
        name: build_guest(source, out / f"{name}.bin", symbols)
        for name, (source, symbols) in GUEST_BUILDS.items()
    }


# -- devices -----------------------------------------------------------------
@dataclass(frozen=True)
class Access:
    """One access a :class:`RecordingDevice` saw."""

    device: str
    kind: str  # "r" or "w"
    offset: int
    size: int
    value: int


class RecordingDevice(Device):
    """Logs every access into a (possibly shared) list.

    Reads are answered from ``answers[(offset, size)]``, a list consumed in
    order; a read nobody planned fails the test.
    """

    def __init__(
        self,
        name: str,
        log: list[Access] | None = None,
        answers: dict[tuple[int, int], list[int]] | None = None,
    ) -> None:
        super().__init__(name)
        self.log: list[Access] = log if log is not None else []
        self.answers = {key: list(values) for key, values in (answers or {}).items()}

    def read(self, offset: int, size: int) -> int:
        queue = self.answers.get((offset, size))
        if not queue:
            raise AssertionError(f"{self.name}: unplanned {size}-byte read at +{offset:#x}")
        value = queue.pop(0)
        self.log.append(Access(self.name, "r", offset, size, value))
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append(Access(self.name, "w", offset, size, value))


# -- machines ----------------------------------------------------------------
def machine_data(
    binary: Path,
    *,
    coalesced: list[tuple[int, int]] | None = None,
    uart: bool = False,
) -> dict[str, Any]:
    """Config data of a bare x86 machine running ``binary`` from 0x100000."""
    devices: list[dict[str, Any]] = []
    if uart:
        devices.append({"type": "uart16550", "name": "uart0", "port": 0x3F8, "output": "none"})
    return machine_config(
        binary,
        entry=LOAD_ADDRESS,
        vm={
            "ram_size": "16MiB",
            "coalesced_mmio": [{"start": start, "size": size} for start, size in (coalesced or [])],
        },
        devices=devices,
    )


@pytest.fixture
def make_machine(machines: list[Machine]) -> Callable[..., Machine]:
    """``make_machine(binary, coalesced=[...], uart=False)``; closed after the test."""

    def make(binary: Path, **kwargs: Any) -> Machine:
        return machine_from(machines, machine_data(binary, **kwargs))

    return make


@pytest.fixture
def recording_device() -> type[RecordingDevice]:
    """The :class:`RecordingDevice` class, for tests to instantiate."""
    return RecordingDevice


@pytest.fixture
def access() -> type[Access]:
    """The :class:`Access` record class, to spell expected logs."""
    return Access
