"""kvm_arm against the conformance suite (kvmbase.testing), inside the arm64 guest."""

from __future__ import annotations

import pytest

from kvm_arm.plugin import demo_config
from kvmbase.testing import ConformanceTarget
from kvmbase.testing.suite import *  # noqa: F403


@pytest.fixture(scope="module")
def conformance_target() -> ConformanceTarget:
    return ConformanceTarget(
        arch="arm",
        guest_config=demo_config,
        end_cause="guest powered off",
        output_device="uart0",
        scratch_register="r11",
        round_trip_exceptions={
            "regs.cntvct": "the virtual counter runs on",
            "a64.cntvct_el0": "the virtual counter runs on (the raw AArch64 copy)",
        },
        lacks={"port_io": "ARM has no IO port space"},
    )
