"""kvm_x86 against the conformance suite (kvmbase.testing), on the real /dev/kvm."""

from __future__ import annotations

import pytest

from kvm_x86.plugin import demo_config
from kvmbase.testing import ConformanceTarget
from kvmbase.testing.suite import *  # noqa: F403


@pytest.fixture(scope="module")
def conformance_target() -> ConformanceTarget:
    return ConformanceTarget(
        arch="x86",
        guest_config=demo_config,
        end_cause="guest exited with status 0",
        output_device="uart0",
        scratch_register="r11",
        round_trip_exceptions={
            "parts.msrs.0x10": "the TSC runs on",
            "parts.xsave.xstate_bv": "KVM marks x87 and SSE state in use once XSAVE is set",
        },
    )
