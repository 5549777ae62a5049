"""The guest-ops device without a guest: its config, registers and bookkeeping.

The guests that use it run in tests/e2e/test_guest_ops_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from kvmbase.config import (
    ConfigError,
    GuestOpsConfig,
    machine_json_schema,
    validate_machine_config,
)
from kvmbase.errors import SimulationError
from kvmbase.sim import guest_ops
from kvmbase.sim.guest_ops import GuestOpsDevice
from kvmbase.sim.system import System


class AnyArch(BaseModel):
    """An architecture section with no settings: these tests are about devices."""

    model_config = ConfigDict(extra="forbid")


def machine(*devices: dict[str, Any]) -> dict[str, Any]:
    return {"arch": "x86", "devices": list(devices)}


def validate(data: dict[str, Any]) -> Any:
    return validate_machine_config(data, {"x86": AnyArch})


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        validate(data)
    return {issue.path: issue.message for issue in caught.value.errors}


# --------------------------------------------------------------------------
# config


def test_defaults() -> None:
    (device,) = validate(machine({"type": "guest-ops"})).devices
    assert isinstance(device, GuestOpsConfig)
    assert (device.name, device.address, device.checkpoint_dir) == (
        "guest_ops",
        0xFFFF0000,
        None,
    )


def test_every_field_from_a_file(tmp_path: Path) -> None:
    data = machine(
        {"type": "guest-ops", "name": "ops", "address": "0xfedc0000", "checkpoint_dir": "ck"}
    )
    (device,) = validate(data).devices
    assert (device.name, device.address, device.checkpoint_dir) == ("ops", 0xFEDC0000, "ck")


@pytest.mark.parametrize(
    ("device", "path", "words"),
    [
        ({"address": 0xFFFF0010}, "devices.0.address", "address 0xffff0010 is not 4 KiB"),
        ({"address": 2**64 - 0x1000}, None, ""),
        ({"address": "near the top"}, "devices.0.address", "is not an address"),
        ({"checkpoint_dir": ""}, "devices.0.checkpoint_dir", "at least 1 character"),
        ({"name": ""}, "devices.0.name", "at least 1 character"),
        ({"checkpoint_directory": "x"}, "devices.0.checkpoint_directory",
         "did you mean 'checkpoint_dir'?"),
    ],
)
def test_bad_fields_are_reported_at_their_path(
    device: dict[str, Any], path: str | None, words: str
) -> None:
    data = machine({"type": "guest-ops", **device})
    if path is None:
        validate(data)  # the last page of the address space is fine
        return
    found = problems(data)
    assert list(found) == [path]
    assert words in found[path]


def test_a_page_past_the_end_of_the_address_space() -> None:
    # Aligned, but 2**64 itself is not an address.
    found = problems(machine({"type": "guest-ops", "address": 2**64}))
    assert list(found) == ["devices.0.address"]


def test_only_one_guest_ops_device() -> None:
    found = problems(
        machine(
            {"type": "guest-ops"},
            {"type": "mmio-scratch", "name": "s", "address": 0xD0000000},
            {"type": "guest-ops", "name": "second", "address": 0xFFFE0000},
        )
    )
    assert found == {
        "devices.2.type": "a machine has at most one guest-ops device; device 0 is one already"
    }


def test_names_are_shared_with_other_devices() -> None:
    found = problems(machine({"type": "uart16550", "name": "guest_ops", "port": 0x3F8},
                             {"type": "guest-ops"}))
    assert list(found) == ["devices.1.name"]


def test_schema_describes_every_field() -> None:
    schema = json.dumps(machine_json_schema({"x86": AnyArch}))
    assert "guest-ops" in schema
    for name, field in GuestOpsConfig.model_fields.items():
        assert field.description, name


# --------------------------------------------------------------------------
# registers


@pytest.fixture
def device() -> GuestOpsDevice:
    return GuestOpsDevice("guest_ops", System())


def test_identity_registers(device: GuestOpsDevice) -> None:
    assert device.read(guest_ops.MAGIC, 8).to_bytes(8, "little") == b"GUESTOPS"
    assert device.read(guest_ops.MAGIC, 4).to_bytes(4, "little") == b"GUES"
    assert device.read(guest_ops.MAGIC, 1) == ord("G")
    assert device.read(guest_ops.VERSION, 4) == 1
    assert device.read(guest_ops.EXIT, 8) == 0


def test_exit_ends_the_event_loop_with_the_status(device: GuestOpsDevice) -> None:
    device.write(guest_ops.EXIT, 4, 17)
    assert device.system.event_queue.pending_exit == ("guest exited with status 17", 17)
    assert device.exit_status == 17


@pytest.mark.parametrize(
    ("kind", "offset", "size", "words"),
    [
        ("read", 0x30, 8, "offset 0x30: no register starts there"),
        ("write", 0x12, 4, "offset 0x12: no register starts there"),
        ("write", 0x1000, 8, "no register starts there"),
        ("read", guest_ops.EXIT, 3, "accesses are 1, 2, 4 or 8 bytes"),
        ("write", guest_ops.MAGIC, 8, "offset 0x0: it is read-only"),
        ("write", guest_ops.VERSION, 4, "offset 0x8: it is read-only"),
    ],
)
def test_bad_accesses_name_the_device_and_the_registers(
    device: GuestOpsDevice, kind: str, offset: int, size: int, words: str
) -> None:
    with pytest.raises(SimulationError) as caught:
        if kind == "read":
            device.read(offset, size)
        else:
            device.write(offset, size, 1)
    message = str(caught.value)
    assert message.startswith(f"guest_ops: {size}-byte {kind}")
    assert words in message
    assert "0x28 CHECKPOINT" in message


def test_statistics_operations_with_no_cpus(device: GuestOpsDevice) -> None:
    seen: list[guest_ops.StatsDump] = []
    device.on_stats_dump = seen.append
    device.write(guest_ops.DUMP_STATS, 8, 0xAB)
    device.write(guest_ops.RESET_STATS, 8, 0)
    assert [(d.number, d.tag, d.statistics) for d in device.stats_dumps] == [(1, 0xAB, {})]
    assert seen == device.stats_dumps
    assert device.read(guest_ops.DUMP_STATS, 8) == 1
    assert device.read(guest_ops.RESET_STATS, 2) == 1


# --------------------------------------------------------------------------
# checkpoint requests


def test_a_request_ends_the_loop_and_waits_for_the_machine(
    device: GuestOpsDevice, tmp_path: Path
) -> None:
    device.write(guest_ops.CHECKPOINT, 8, 0x55)
    assert device.system.event_queue.pending_exit == (guest_ops.CHECKPOINT_CAUSE, 0)
    assert device.checkpoint_requested
    # Not counted until taken, so the guest does not see it yet.
    assert device.read(guest_ops.CHECKPOINT, 8) == 0
    with pytest.raises(SimulationError, match="no checkpoint directory is set"):
        device.take_checkpoint_request()
    assert device.checkpoint_requested  # still waiting
    device.checkpoint_dir = tmp_path
    taken = device.take_checkpoint_request()
    assert taken is not None
    assert (taken.number, taken.tag, taken.path) == (1, 0x55, tmp_path / "checkpoint-1")
    assert device.read(guest_ops.CHECKPOINT, 8) == 1
    assert not device.checkpoint_requested
    assert device.take_checkpoint_request() is None


def test_a_second_request_before_the_first_is_served_is_one_checkpoint(
    device: GuestOpsDevice, tmp_path: Path
) -> None:
    device.checkpoint_dir = tmp_path
    device.write(guest_ops.CHECKPOINT, 8, 1)
    device.write(guest_ops.CHECKPOINT, 8, 2)
    taken = device.take_checkpoint_request()
    assert taken is not None and (taken.number, taken.tag) == (1, 1)
    assert device.take_checkpoint_request() is None


def test_counts_survive_a_checkpoint(device: GuestOpsDevice, tmp_path: Path) -> None:
    device.checkpoint_dir = tmp_path
    device.write(guest_ops.DUMP_STATS, 8, 0)
    device.write(guest_ops.CHECKPOINT, 8, 0)
    device.take_checkpoint_request()
    state = json.loads(json.dumps(device.serialize()))
    copy = GuestOpsDevice("guest_ops", System())
    copy.unserialize(state)
    assert [copy.read(offset, 8) for offset in (0x18, 0x20, 0x28)] == [1, 0, 1]
