"""The conformance suite for architecture plugins (a pytest plugin).

A plugin author declares, in one place, what is under test::

    # conftest.py of the plugin's tests
    import pytest
    from kvmbase.testing import ConformanceTarget

    @pytest.fixture(scope="module")
    def conformance_target() -> ConformanceTarget:
        return ConformanceTarget(
            arch="riscv",
            guest_config=my_plugin.demo_config,   # a guest that prints and ends
            end_cause="guest powered off",
            scratch_register="x28",
            output_device="uart0",
            lacks={"port_io": "RISC-V has no IO port space"},
        )

and runs the suite from one test module::

    from kvmbase.testing.suite import *  # noqa: F403

``pytest`` loads this plugin through its ``pytest11`` entry point, so the
fixtures the suite uses exist wherever kvmbase is installed. Tests of a
capability the target lacks skip with ``arch lacks: <capability> (<why>)``;
every KVM test skips with ``host lacks: ...`` where the architecture cannot
run. Nothing is skipped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARCH_LACKS", "CAPABILITIES", "HOST_LACKS", "ConformanceTarget"]

HOST_LACKS = "host lacks: "
ARCH_LACKS = "arch lacks: "

#: What the suite can check; a target names the ones it lacks, with the reason.
CAPABILITIES = {
    "mmio": "the guest makes MMIO exits",
    "port_io": "the guest makes port IO exits (x86's IO space)",
    "switch": "a second CPU takes over from the first (switch_out, take_over_from)",
    "checkpoint": "drain, serialize and restore into a fresh VM",
}


@dataclass(frozen=True)
class ConformanceTarget:
    """The architecture under test and what the suite may expect of it.

    ``guest_config`` returns a machine config (as data) whose guest writes
    output to the device ``output_device`` (its every write is recorded,
    whatever the device is) and then ends with ``end_cause``. The suite
    stops it once after ``stop_after_writes`` writes to that device, so the
    guest must make more.  ``scratch_register`` is a register of the thread
    context the suite may write at that stop (the guest is not run on).
    ``round_trip_exceptions`` maps dotted paths into the thread context's
    ``save_state()`` (``"regs.cntvct_el0"``) that may read back different from
    what was written (a counter that runs on) to the reason.
    """

    arch: str
    guest_config: Callable[[], Mapping[str, Any]]
    end_cause: str
    scratch_register: str
    output_device: str = "uart0"
    stop_after_writes: int = 10
    round_trip_exceptions: Mapping[str, str] = field(default_factory=dict)
    lacks: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.lacks) - set(CAPABILITIES)
        if unknown:
            raise ValueError(
                f"lacks names unknown capabilities {sorted(unknown)}; "
                f"known: {', '.join(sorted(CAPABILITIES))}"
            )
