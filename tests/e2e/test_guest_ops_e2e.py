"""Guest-requested operations (exit, statistics, checkpoints) and
``kvmbase run --dump``, with real guests on the real /dev/kvm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_support import attach_recorders, patched_image
from x86_machines import machine_config, machine_from

from kvmbase import BusError, ConfigurationError, Machine, SimulationError
from kvmbase.sim.guest_ops import GuestOpsDevice

pytestmark = pytest.mark.kvm

KVMBASE = [sys.executable, "-m", "kvmbase.cli"]
MULTIPLIER = 6364136223846793005
GUEST_OPS = {"type": "guest-ops"}


def kvmbase(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KVMBASE, *args], capture_output=True, text=True, timeout=120)


def status_image(guest_dir: Path, tmp_path: Path, status: int) -> Path:
    """ops_exit.bin exiting with ``status`` (the quad at +8)."""
    return patched_image(guest_dir, "ops_exit", tmp_path, status)


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


def guest_ops_of(machine: Machine) -> GuestOpsDevice:
    assert machine.guest_ops is not None
    return machine.guest_ops


# --------------------------------------------------------------------------
# exit with a status


@pytest.mark.parametrize("status", [0, 1, 42, 255, 300, 2**64 - 1])
def test_guest_exits_with_its_status(
    guest_dir: Path, tmp_path: Path, machines: list[Machine], status: int
) -> None:
    image = status_image(guest_dir, tmp_path, status)
    machine = machine_from(machines, machine_config(image, devices=[GUEST_OPS]))
    result = machine.run()
    assert (result.cause, result.code) == (f"guest exited with status {status}", status)
    assert guest_ops_of(machine).exit_status == status
    stats = machine.statistics()["cpu0"]
    assert (stats["num_mmio"], stats["num_vm_exits"], stats["num_halt"]) == (1, 1, 0)
    # Run on after the exit: the guest halts, as its source says.
    assert machine.run().cause == "all CPUs halted"


@pytest.mark.parametrize(("status", "exit_status"), [(0, 0), (42, 42), (255, 255), (300, 255)])
def test_kvmbase_run_exits_with_the_guests_status(
    guest_dir: Path, tmp_path: Path, status: int, exit_status: int
) -> None:
    image = status_image(guest_dir, tmp_path, status)
    config = write_config(tmp_path / "exit.json", machine_config(image, devices=[GUEST_OPS]))
    result = kvmbase("run", str(config), "--no-stats")
    assert result.returncode == exit_status, result.stderr
    assert f"guest exited with status {status} (code {status})" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_guest_op_at_a_configured_address(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    """The page moves with the config: nothing answers at the default then."""
    image = status_image(guest_dir, tmp_path, 5)
    moved = {"type": "guest-ops", "address": 0xFEDC0000}
    machine = machine_from(machines, machine_config(image, devices=[moved]))
    with pytest.raises(BusError, match="address 0xffff0010: no device there"):
        machine.run()


# --------------------------------------------------------------------------
# statistics


def test_statistics_dump_and_reset_count_exactly(
    guest_dir: Path, machines: list[Machine]
) -> None:
    machine = Machine.from_data(
        machine_config(guest_dir / "ops_stats.bin", devices=[GUEST_OPS])
    )
    machines.append(machine)
    values, _ = attach_recorders(machine)
    announced: list[int] = []
    guest_ops = guest_ops_of(machine)
    guest_ops.on_stats_dump = lambda dump: announced.append(dump.tag)
    result = machine.run()
    assert (result.cause, result.code) == ("guest exited with status 7", 7)
    assert len(values.values) == 12

    def counts(statistics: dict[str, dict[str, int]]) -> tuple[int, int, int, int]:
        cpu0 = statistics["cpu0"]
        return cpu0["num_vm_exits"], cpu0["num_io"], cpu0["num_mmio"], cpu0["num_halt"]

    dumps = guest_ops.stats_dumps
    assert [(d.number, d.tag) for d in dumps] == [(1, 0x11), (2, 0x22), (3, 0x33)]
    assert announced == [0x11, 0x22, 0x33]
    # Before the reset: the MAGIC read, 5 outs, and the dump's own write.
    assert counts(dumps[0].statistics) == (7, 5, 2, 0)
    # After it: only later exits (7 outs, 3 reads, then each dump's write).
    assert counts(dumps[1].statistics) == (11, 7, 4, 0)
    assert counts(dumps[2].statistics) == (12, 7, 5, 0)
    assert counts(machine.statistics()) == (13, 7, 6, 0)
    assert dumps[0].tick < dumps[1].tick <= dumps[2].tick <= result.tick
    assert (guest_ops.dump_count, guest_ops.reset_count) == (3, 1)


def test_kvmbase_run_prints_the_guests_statistics_dumps(
    guest_dir: Path, tmp_path: Path
) -> None:
    # A UART at port 0xE0 takes the guest's outs (ports 0xE0-0xE7).
    sink = {"type": "uart16550", "name": "sink", "port": 0xE0, "output": "none"}
    data = machine_config(guest_dir / "ops_stats.bin", devices=[sink, GUEST_OPS])
    config = write_config(tmp_path / "stats.json", data)
    result = kvmbase("run", str(config), "--no-stats")
    assert result.returncode == 7, result.stderr
    for number, tag in ((1, "0x11"), (2, "0x22"), (3, "0x33")):
        assert f"statistics of cpu0, dump {number} asked for by the guest (tag {tag})" in (
            result.stdout
        )
    as_json = kvmbase("run", str(config), "--json")
    assert as_json.returncode == 7, as_json.stderr
    report = json.loads(as_json.stdout)
    dumps = report["guest_ops"]["stats_dumps"]
    assert [d["statistics"]["cpu0"]["num_io"] for d in dumps] == [5, 7, 7]
    assert [d["tag"] for d in dumps] == [0x11, 0x22, 0x33]
    assert report["result"]["code"] == 7


# --------------------------------------------------------------------------
# checkpoints


def expected_run(iterations: int) -> tuple[list[int], list[int], int]:
    """What ops_checkpoint.S writes to ports 0xE0 and 0xE1, and its status."""
    acc, values = 0, []
    for i in range(1, iterations + 1):
        acc = (acc * MULTIPLIER + i) % 2**64
        values.append(acc & 0xFFFFFFFF)
    return values, [1, 2, acc & 0xFFFFFFFF, acc >> 32], acc & 0xFF


def checkpoint_machine(
    guest_dir: Path, tmp_path: Path, machines: list[Machine], **guest_ops: Any
) -> Machine:
    image = patched_image(guest_dir, "ops_checkpoint", tmp_path, 300)
    machine = Machine.from_data(
        machine_config(image, devices=[{"type": "guest-ops", **guest_ops}])
    )
    machines.append(machine)
    attach_recorders(machine)
    return machine


def add_recorders(machine: Machine) -> None:
    attach_recorders(machine)


def ram_digest(checkpoint: Path) -> str:
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    digest: str = manifest["memories"][0]["sha256"]
    return digest


def test_guest_checkpoints_are_written_and_the_run_goes_on(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    directory = tmp_path / "checkpoints"
    machine = checkpoint_machine(guest_dir, tmp_path, machines, checkpoint_dir=str(directory))
    values, result = machine.devices["values"], machine.devices["result"]
    outcome = machine.run()
    # One run from the caller's side, the checkpoints written on the way.
    expected_values, expected_results, status = expected_run(300)
    assert (outcome.cause, outcome.code) == (f"guest exited with status {status}", status)
    assert values.values == expected_values  # type: ignore[attr-defined]
    assert result.values == expected_results  # type: ignore[attr-defined]
    written = guest_ops_of(machine).checkpoints
    assert [(c.number, c.tag) for c in written] == [(1, 100), (2, 200)]
    assert [c.path for c in written] == [
        directory.absolute() / "checkpoint-1",
        directory.absolute() / "checkpoint-2",
    ]
    assert written[0].tick < written[1].tick < outcome.tick
    for checkpoint in written:
        manifest = json.loads((checkpoint.path / "manifest.json").read_text())
        assert manifest["tick"] >= checkpoint.tick
        assert manifest["devices"]["guest_ops"]["checkpoint_count"] == checkpoint.number
        saved = manifest["devices"]["values"]["values"]
        assert saved == expected_values[: checkpoint.tag]
    # Each checkpoint drained the CPU with one half entry to finish the write.
    assert machine.statistics()["cpu0"]["num_vm_half_entries"] == 2


@pytest.mark.parametrize("number", [1, 2])
def test_a_guest_checkpoint_restores_into_a_fresh_vm_with_the_same_result(
    guest_dir: Path, tmp_path: Path, machines: list[Machine], number: int
) -> None:
    directory = tmp_path / "first"
    first = checkpoint_machine(guest_dir, tmp_path, machines, checkpoint_dir=str(directory))
    first_outcome = first.run()
    first.close()

    again = tmp_path / "again"
    restored = Machine.restore(
        directory / f"checkpoint-{number}",
        before_load=add_recorders,
        checkpoint_dir=again,
    )
    machines.append(restored)
    outcome = restored.run()
    assert (outcome.cause, outcome.code) == (first_outcome.cause, first_outcome.code)
    expected_values, expected_results, _ = expected_run(300)
    assert restored.devices["values"].values == expected_values  # type: ignore[attr-defined]
    assert restored.devices["result"].values == expected_results  # type: ignore[attr-defined]
    ops = guest_ops_of(restored)
    # The guest read the count the checkpoint carried; later checkpoints
    # went to the directory given at restore time, numbered on.
    assert ops.checkpoint_count == 2
    assert [c.number for c in ops.checkpoints] == ([2] if number == 1 else [])
    if number == 1:
        remade = again / "checkpoint-2"
        assert ops.checkpoints[0].path == remade.absolute()
        assert ram_digest(remade) == ram_digest(directory / "checkpoint-2")
    # The restored run did only the rest of the work.
    assert restored.statistics()["cpu0"]["num_io"] == 300 - 100 * number + 5 - number


def test_a_checkpoint_request_without_a_directory_waits_for_one(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    machine = checkpoint_machine(guest_dir, tmp_path, machines)
    with pytest.raises(SimulationError, match="no checkpoint directory is set"):
        machine.run()
    ops = guest_ops_of(machine)
    assert ops.checkpoint_requested and ops.checkpoint_count == 0
    ops.checkpoint_dir = tmp_path / "late"
    outcome = machine.run()
    _, expected_results, status = expected_run(300)
    assert outcome.code == status
    assert machine.devices["result"].values == expected_results  # type: ignore[attr-defined]
    assert [c.path.name for c in ops.checkpoints] == ["checkpoint-1", "checkpoint-2"]


def test_kvmbase_run_checkpoint_dir_option(guest_dir: Path, tmp_path: Path) -> None:
    image = patched_image(guest_dir, "ops_checkpoint", tmp_path, 300)
    sink = {"type": "uart16550", "name": "sink", "port": 0xE0, "output": "none"}
    config = write_config(tmp_path / "ckpt.json", machine_config(image, devices=[sink, GUEST_OPS]))
    directory = tmp_path / "from-cli"
    result = kvmbase("run", str(config), "--no-stats", "--checkpoint-dir", str(directory))
    _, _, status = expected_run(300)
    assert result.returncode == status, result.stderr
    assert "guest checkpoint 1 (tag 0x64) at tick" in result.stdout
    assert str(directory / "checkpoint-2") in result.stdout
    for number in (1, 2):
        manifest = json.loads((directory / f"checkpoint-{number}" / "manifest.json").read_text())
        (device,) = [d for d in manifest["config"]["devices"] if d["type"] == "guest-ops"]
        assert device["checkpoint_dir"] == str(directory)
    # Without a directory the request is one clear error.
    failed = kvmbase("run", str(config), "--no-stats")
    assert failed.returncode == 1
    assert "no checkpoint directory is set" in failed.stderr
    assert "Traceback" not in failed.stderr


# --------------------------------------------------------------------------
# bad placement and options the config schema cannot check


def test_guest_ops_page_on_ram_is_a_configuration_error(
    guest_dir: Path, tmp_path: Path
) -> None:
    image = status_image(guest_dir, tmp_path, 0)
    data = machine_config(image, devices=[{"type": "guest-ops", "address": 0x200000}])
    with pytest.raises(ConfigurationError, match=r"guest_ops at 0x200000\+0x1000 overlaps ram"):
        Machine.from_data(data)


def test_checkpoint_dir_needs_a_guest_ops_device(guest_dir: Path, tmp_path: Path) -> None:
    image = status_image(guest_dir, tmp_path, 0)
    with pytest.raises(ConfigurationError, match="no guest-ops device"):
        Machine.from_data(machine_config(image), checkpoint_dir=tmp_path)


# --------------------------------------------------------------------------
# kvmbase run --dump


def test_run_dump_regs_and_sregs_prints_tables_in_hex(tmp_path: Path) -> None:
    as_json = kvmbase("run", "--uart", "none", "--json", "--dump", "regs,sregs")
    assert as_json.returncode == 0, as_json.stderr
    dump = json.loads(as_json.stdout)["dumps"]["cpu0"]
    assert set(dump) == {"regs", "sregs"}
    result = kvmbase("run", "--uart", "none", "--no-stats", "--dump", "regs, sregs")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "cpu0 regs" in text and "cpu0 sregs" in text
    # The demo ends at the same place each run, with the guest-ops page in rbx.
    regs = dump["regs"]
    assert regs["rbx"] == 0xFFFF0000
    for name in ("rax", "rbx", "rsp", "rip", "rflags", "r15"):
        assert name in text
    for name in ("rbx", "rip", "rsp"):
        assert f"{regs[name]:#x}" in text
    sregs = dump["sregs"]
    for name in ("cr0", "cr3", "cr4", "efer", "cs", "ds", "tr", "gdt", "idt", "selector"):
        assert name in text
    for value in (sregs["cr0"], sregs["efer"], sregs["gdt"]["base"], sregs["tr"]["base"]):
        assert f"{value:#x}" in text
    assert "0xffffffff" in text  # the code segment's limit
    # Tables are printed after the run, before the result line.
    assert text.index("cpu0 regs") < text.index("guest exited with status 0")


def test_run_dump_all_prints_every_section(tmp_path: Path) -> None:
    as_json = kvmbase("run", "--uart", "none", "--json", "--dump", "all")
    assert as_json.returncode == 0, as_json.stderr
    sections = json.loads(as_json.stdout)["dumps"]["cpu0"]
    assert {"regs", "sregs", "fpu", "cpuid"} <= set(sections)
    text = kvmbase("run", "--uart", "none", "--no-stats", "--dump", "all").stdout
    for section in sections:
        assert f"cpu0 {section}" in text
    assert f"{sections['regs']['rip']:#x}" in text
    assert f"{sections['fpu']['mxcsr']:#x}" in text


def test_unknown_dump_section_is_one_error_before_the_run() -> None:
    result = kvmbase("run", "--dump", "regs,bogus")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.startswith("kvmbase: error: unknown dump section 'bogus'; valid sections: ")
    for section in ("regs", "sregs", "fpu", "cpuid"):
        assert section in line
    assert line.endswith("(or all)")
    # The guest never ran.
    assert "kvmbase demo" not in result.stdout
    mixed = kvmbase("run", "--dump", "all,regs")
    assert mixed.returncode == 2
    assert "--dump all stands alone" in mixed.stderr
    empty = kvmbase("run", "--dump", ",")
    assert empty.returncode == 2
    assert "name at least one section" in empty.stderr
