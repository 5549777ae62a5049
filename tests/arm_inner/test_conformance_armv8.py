"""kvm_armv8 against the conformance suite (kvmbase.testing), inside the arm64 guest."""

from __future__ import annotations

import pytest

from kvm_armv8.plugin import demo_config
from kvmbase.testing import ConformanceTarget
from kvmbase.testing.suite import *  # noqa: F403


@pytest.fixture(scope="module")
def conformance_target() -> ConformanceTarget:
    return ConformanceTarget(
        arch="armv8",
        guest_config=demo_config,
        end_cause="guest powered off",
        output_device="uart0",
        scratch_register="x28",
        round_trip_exceptions={
            "regs.cntvct_el0": "the virtual counter runs on"
        },
        lacks={"port_io": "ARM has no IO port space"},
    )
