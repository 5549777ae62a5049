"""The conformance tests. Import them into one test module of the plugin::

    from kvmbase.testing.suite import *  # noqa: F403

They need the plugin's ``conformance_target`` fixture (see
:mod:`kvmbase.testing`) and use the fixtures of :mod:`kvmbase.testing.plugin`.
"""

from __future__ import annotations

import inspect
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from kvmbase.config import ConfigError, machine_json_schema, validate_machine_config
from kvmbase.cpu import BaseKvmCPU
from kvmbase.machine import Machine
from kvmbase.plugins import architectures, config_models, get_arch
from kvmbase.testing import ConformanceTarget
from kvmbase.testing.plugin import GuestRun, record_output, require

__all__ = [
    "test_conformance_checkpoint_restores_into_a_fresh_vm",
    "test_conformance_config_errors_name_the_field",
    "test_conformance_config_section_has_defaults_and_a_schema",
    "test_conformance_contract_methods_are_the_plugins_own",
    "test_conformance_drain_leaves_nothing_in_the_vcpu",
    "test_conformance_dump_returns_every_declared_section",
    "test_conformance_guest_reaches_its_exits_and_ends",
    "test_conformance_registered_through_the_entry_point",
    "test_conformance_state_syncs_lazily",
    "test_conformance_switch_to_a_new_cpu",
    "test_conformance_whole_context_round_trips",
]

CONTRACT = ("update_kvm_state", "update_thread_context", "dump", "dump_sections")


# -- registration and configuration (no KVM needed) ----------------------------
def test_conformance_registered_through_the_entry_point(
    conformance_target: ConformanceTarget,
) -> None:
    description = architectures()[conformance_target.arch]
    distributions = {
        _normalized(point.dist.name) for point in entry_points(group="kvmbase") if point.dist
    }
    assert _normalized(description.distribution) in distributions, (
        f"no entry point of the group 'kvmbase' comes from {description.distribution}"
    )
    assert description.name == conformance_target.arch
    assert description.host_machines, "host_machines names no host"
    assert issubclass(description.cpu_class, BaseKvmCPU)
    assert description.cpu_class.thread_context_class is description.thread_context_class


def test_conformance_contract_methods_are_the_plugins_own(
    conformance_target: ConformanceTarget,
) -> None:
    cpu_class = get_arch(conformance_target.arch).cpu_class
    assert not inspect.isabstract(cpu_class)
    for name in CONTRACT:
        assert getattr(cpu_class, name) is not getattr(BaseKvmCPU, name), name


def test_conformance_config_section_has_defaults_and_a_schema(
    conformance_target: ConformanceTarget,
) -> None:
    arch = conformance_target.arch
    model = get_arch(arch).config_model
    model.model_validate({})  # every field has a default
    schema = machine_json_schema(config_models())
    assert arch in json.dumps(schema)
    config = validate_machine_config(dict(conformance_target.guest_config()), config_models())
    assert config.arch == arch


def test_conformance_config_errors_name_the_field(conformance_target: ConformanceTarget) -> None:
    arch = conformance_target.arch
    data = dict(conformance_target.guest_config())
    section = dict(data.get(arch) or {})
    section["no_such_setting"] = 1
    data[arch] = section
    with pytest.raises(ConfigError) as caught:
        validate_machine_config(data, config_models())
    assert (arch, "no_such_setting") in [issue.loc for issue in caught.value.errors]


# -- the vCPU contract on the real /dev/kvm ---------------------------------------
def test_conformance_guest_reaches_its_exits_and_ends(
    conformance_target: ConformanceTarget,
    target_machine: Any,
    reference_output: list[tuple[int, int, int]],
) -> None:
    run: GuestRun = target_machine()
    result = run.machine.run()
    assert result.cause == conformance_target.end_cause
    assert run.log.writes == reference_output  # the same guest, the same output
    stats = run.machine.statistics()[run.machine.cpu.name]
    assert stats["num_vm_exits"] >= stats["num_mmio"] + stats["num_io"] > 0
    if "mmio" not in conformance_target.lacks:
        assert stats["num_mmio"] > 0, "the guest made no MMIO exit"
    if "port_io" not in conformance_target.lacks:
        assert stats["num_io"] > 0, "the guest made no port IO exit"


def test_conformance_state_syncs_lazily(
    conformance_target: ConformanceTarget, target_machine: Any
) -> None:
    run: GuestRun = target_machine(stop=True)
    cpu = run.machine.cpu
    assert cpu.kvm_state_dirty and not cpu.thread_context_dirty  # the vCPU is ahead
    pc = cpu.get_context().pc
    assert not cpu.kvm_state_dirty
    name = conformance_target.scratch_register
    value = cpu.read_register(name) ^ 0x5A5A
    cpu.write_register(name, value)
    assert cpu.thread_context_dirty
    cpu.sync_kvm_state()
    assert not cpu.thread_context_dirty
    cpu.kvm_state_dirty = True  # as after a run: the next read comes from KVM
    assert cpu.read_register(name) == value
    assert cpu.get_context().pc == pc


def test_conformance_whole_context_round_trips(
    conformance_target: ConformanceTarget, target_machine: Any
) -> None:
    run: GuestRun = target_machine(stop=True)
    cpu = run.machine.cpu
    cpu.sync_thread_context()
    before = cpu.thread.save_state()
    cpu.update_kvm_state()
    cpu.update_thread_context()
    after = cpu.thread.save_state()
    for path in conformance_target.round_trip_exceptions:
        *parents, leaf = path.split(".")
        for state in (before, after):
            part = state
            for key in parents:
                part = part[key]
            assert leaf in part, f"round_trip_exceptions: no {path} in the saved context"
            del part[leaf]
    differ = _differing_paths(before, after)
    assert not differ, (
        "read back different from what was written (list a path in round_trip_exceptions "
        f"only if it changes on its own): {differ}"
    )


def test_conformance_drain_leaves_nothing_in_the_vcpu(target_machine: Any) -> None:
    run: GuestRun = target_machine(stop=True)
    run.machine.drain()
    cpu = run.machine.cpu
    assert cpu.drained and cpu.arch_is_drained() and not cpu.kvm_state_dirty
    run.machine.drain_resume()


def test_conformance_dump_returns_every_declared_section(target_machine: Any) -> None:
    run: GuestRun = target_machine(stop=True)
    cpu = run.machine.cpu
    sections = cpu.dump_sections()
    assert sections, "dump_sections() names no section"
    dump = cpu.dump()
    assert tuple(dump) == sections
    json.dumps(dump)  # plain data
    assert list(cpu.dump(sections[-1])) == [sections[-1]]
    with pytest.raises(KeyError, match="no dump section"):
        cpu.dump("no-such-section")


def test_conformance_switch_to_a_new_cpu(
    conformance_target: ConformanceTarget,
    target_machine: Any,
    reference_output: list[tuple[int, int, int]],
) -> None:
    require(conformance_target, "switch")
    run: GuestRun = target_machine(stop=True)
    machine = run.machine
    old = machine.cpu
    new = machine.new_cpu(f"{old.name}_next")
    machine.switch_cpus(old, new)
    assert old.switched_out and machine.cpu is new
    assert machine.run().cause == conformance_target.end_cause
    assert run.log.writes == reference_output
    assert new.stats.num_vm_exits > 0  # the new CPU ran the rest


def test_conformance_checkpoint_restores_into_a_fresh_vm(
    conformance_target: ConformanceTarget,
    target_machine: Any,
    reference_output: list[tuple[int, int, int]],
    tmp_path: Path,
) -> None:
    require(conformance_target, "checkpoint")
    run: GuestRun = target_machine(stop=True)
    path = run.machine.checkpoint(tmp_path / "checkpoint")
    restored = Machine.restore(path, uart_output="none")
    try:
        log = type(run.log)(list(run.log.writes))
        record_output(restored, conformance_target, log)
        assert restored.run().cause == conformance_target.end_cause
        assert log.writes == reference_output
    finally:
        restored.close()
    # the original carries on too
    assert run.machine.run().cause == conformance_target.end_cause
    assert run.log.writes == reference_output


def _differing_paths(written: Any, read: Any, path: str = "") -> list[str]:
    """Dotted paths where two saved contexts differ, with both values at the leaves."""
    if isinstance(written, dict) and isinstance(read, dict):
        found: list[str] = []
        for key in written.keys() | read.keys():
            where = f"{path}.{key}" if path else str(key)
            if key not in written or key not in read:
                found.append(f"{where} (only on one side)")
            else:
                found += _differing_paths(written[key], read[key], where)
        return sorted(found)
    if isinstance(written, list) and isinstance(read, list) and len(written) == len(read):
        return [p for index, (w, r) in enumerate(zip(written, read, strict=True))
                for p in _differing_paths(w, r, f"{path}[{index}]")]
    return [] if written == read else [f"{path}: wrote {written!r}, read {read!r}"]


def _normalized(distribution: str) -> str:
    return distribution.lower().replace("_", "-")
