"""Coalesced port IO: writes queue in the ring and reach the port's device."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import skip_host_lacks
from e2e_support import PORT_VALUES, attach_recorders, patched_image
from test_checkpoint import expected_values
from x86_machines import machine_config, machine_from

from kvmbase import Machine, abi

pytestmark = pytest.mark.kvm


def test_coalesced_port_writes_arrive_in_order(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    iterations = 500
    image = patched_image(guest_dir, "counter", tmp_path, iterations)
    # KVM coalesces an access only if all of it lies in the zone: 4 bytes.
    config = machine_config(image, vm={"coalesced_pio": [{"start": PORT_VALUES, "size": 4}]})
    machine = machine_from(machines, config)
    if not machine.vm.kvm.cap_coalesced_pio:
        skip_host_lacks("KVM_CAP_COALESCED_PIO")
    values, result = attach_recorders(machine)

    assert machine.run().cause == "all CPUs halted"

    expected, final = expected_values(iterations)
    assert values.values == expected
    assert result.values[0] | result.values[1] << 32 == final
    stats = machine.statistics()["cpu0"]
    # The ring keeps one slot empty: 169 writes queue, the 170th finds it
    # full and exits as plain port IO (the exit flushes the ring).
    ring_full_exits = iterations // abi.KVM_COALESCED_MMIO_MAX
    assert ring_full_exits == 2
    assert stats["num_coalesced_mmio"] == iterations - ring_full_exits
    # Besides those, only the two result writes exit.
    assert stats["num_io"] == 2 + ring_full_exits
