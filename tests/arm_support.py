"""What tests/kvm_armv8 and tests/kvm_arm share: their test guests, built or
prebuilt, the recording MMIO device, and machines made of the two."""

from __future__ import annotations

import importlib.util
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_host_lacks  # tests/conftest.py

from kvmbase import Machine
from kvmbase.sim.bus import Device

ARM64_HOST = platform.machine() in ("aarch64", "arm64")


@pytest.fixture(autouse=True)
def _needs_arm64_kvm(request: pytest.FixtureRequest) -> None:
    """Skip ``kvm`` tests off arm64: they run inside the ARM harness's guest.
    (Autouse in the test folders whose conftest imports it.)"""
    if request.node.get_closest_marker("kvm") and not ARM64_HOST:
        skip_host_lacks(
            f"an arm64 KVM host (this one is {platform.machine()}); "
            "these tests run inside the arm64 guest of the ARM harness"
        )


#: where the tests' Recorder sits, and the RAM of their machines
RECORDER_ADDRESS = 0x0A000000
RAM_BASE = 0x40000000


def load_guest_builder(folder: Path) -> Any:
    """``folder/guests/build.py`` as a module (its ``build_all(out)`` builds every guest)."""
    path = folder / "guests" / "build.py"
    spec = importlib.util.spec_from_file_location(f"{folder.name}_guest_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def guest_getter(folder: Path, toolchain: Callable[[], object], binutils: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``get(name)``: the test guest ``name`` of ``folder``.

    Prebuilt binaries (the harness's pre-build hook puts them in
    ``folder/guests/build``) come first; otherwise every guest is built once
    here, which needs ``binutils`` (skipped as "host lacks" without them).
    """
    prebuilt = folder / "guests" / "build"
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if (prebuilt / f"{name}.bin").exists():
            return prebuilt / f"{name}.bin"
        if not built:
            if toolchain() is None:
                skip_host_lacks(f"{binutils}, and no prebuilt guests in {prebuilt}")
            out = tmp_path_factory.mktemp(f"{folder.name}-guests")
            for path in load_guest_builder(folder).build_all(out):
                built[path.stem] = path
        return built[name]

    return get


class Recorder(Device):
    """The tests' MMIO device: logs (offset, size, value) of every write and
    answers reads with ``PATTERN + offset``, cut to the access size.
    ``on_write(offset, value)`` is called after each write."""

    PATTERN = 0xF0E0D0C0B0A09080

    def __init__(self, name: str = "recorder") -> None:
        super().__init__(name)
        self.writes: list[tuple[int, int, int]] = []
        self.reads: list[tuple[int, int]] = []
        self.on_write: Callable[[int, int], None] | None = None

    def read(self, offset: int, size: int) -> int:
        self.reads.append((offset, size))
        return (self.PATTERN + offset) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, size, value))
        if self.on_write is not None:
            self.on_write(offset, value)

    def serialize(self) -> dict[str, Any]:
        return {"writes": [list(w) for w in self.writes]}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.writes = [(int(o), int(s), int(v)) for o, s, v in state["writes"]]


MachineFactory = Callable[..., tuple[Machine, Recorder]]


def add_recorder(machine: Machine) -> Recorder:
    """Put a fresh :class:`Recorder` on ``machine`` (``Machine.restore``'s before_load)."""
    recorder = Recorder()
    machine.add_device(recorder, RECORDER_ADDRESS, 0x1000)
    return recorder


def machine_config(arch: str, image: Path, entry: int, cpu: dict[str, Any] | None = None,
                   **section: Any) -> dict[str, Any]:
    """A machine of ``arch``: 16 MiB at RAM_BASE, ``image`` at ``entry``; the
    keywords are the ``[arch]`` section (the UART stays quiet unless given)."""
    section.setdefault("uart", {"output": "none"})
    return {
        "arch": arch,
        "vm": {"ram_base": RAM_BASE, "ram_size": "16MiB"},
        "cpu": cpu or {},
        "image": {"path": str(image), "load_address": entry},
        arch: section,
    }


def machine_with_recorder(machines: list[Machine], arch: str, image: Path, entry: int,
                          **section: Any) -> tuple[Machine, Recorder]:
    """A machine (added to ``machines``, closed after the test) with a Recorder."""
    machine = Machine.from_data(machine_config(arch, image, entry, **section),
                                uart_output="none")
    machines.append(machine)
    return machine, add_recorder(machine)
