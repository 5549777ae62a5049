"""Plugins extend kvmbase through hooks that run at set-up time only."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import click
import pytest
from click.testing import CliRunner

from kvmbase import BaseKvmCPU, KvmbaseError, KvmVM, Machine, abi, hookimpl
from kvmbase.cli import _add_plugin_commands, cli
from kvmbase.plugins import (
    get_arch,
    other_plugins,
    plugin_manager,
    register_plugin,
    unregister_plugin,
)

pytestmark = pytest.mark.kvm


class RecordingPlugin:
    def __init__(self) -> None:
        self.hook_calls: dict[str, int] = {}
        self.halts: list[int] = []
        self.vms: list[KvmVM] = []
        self.cpus: list[BaseKvmCPU] = []

    def _count(self, name: str) -> None:
        self.hook_calls[name] = self.hook_calls.get(name, 0) + 1

    def on_halt(self, cpu: BaseKvmCPU) -> int:
        self.halts.append(cpu.read_register("rip"))
        cpu.thread.suspend()
        return 0

    @hookimpl
    def kvmbase_exit_handlers(
        self, cpu: BaseKvmCPU
    ) -> Mapping[int, Callable[[BaseKvmCPU], int]]:
        self._count("exit_handlers")
        return {abi.KVM_EXIT_HLT: self.on_halt}

    @hookimpl
    def kvmbase_vm_started(self, vm: KvmVM) -> None:
        self._count("vm_started")
        self.vms.append(vm)

    @hookimpl
    def kvmbase_vcpu_started(self, cpu: BaseKvmCPU) -> None:
        self._count("vcpu_started")
        self.cpus.append(cpu)

    @hookimpl
    def kvmbase_dump_sections(self, cpu: BaseKvmCPU) -> Mapping[str, Callable[[], Any]]:
        return {"exits": lambda: {"total": cpu.stats.num_vm_exits}}

    @hookimpl
    def kvmbase_add_commands(self, cli: click.Group) -> None:
        @cli.command("hello")
        def hello() -> None:
            """Say hello from a plugin."""
            click.echo("hello from a plugin")

        @cli.command("fail")
        def fail() -> None:
            """Fail the way kvmbase errors do."""
            raise KvmbaseError("the plugin could not")


@pytest.fixture
def plugin() -> Iterator[RecordingPlugin]:
    recording = RecordingPlugin()
    register_plugin(recording, name="recording-test-plugin")
    yield recording
    unregister_plugin(recording)


def demo_machine() -> Machine:
    demo = get_arch("x86").demo_config
    assert demo is not None
    return Machine.from_data(demo(), uart_output="none")


def test_exit_handlers_are_collected_once_and_called_directly(
    plugin: RecordingPlugin,
) -> None:
    with demo_machine() as machine:
        monitor: list[str] = []
        undo = plugin_manager().add_hookcall_monitoring(
            lambda name, impls, kwargs: monitor.append(name), lambda *args: None
        )
        try:
            # The demo exits through its guest-ops page, then halts if run on.
            first = machine.run()
            result = machine.run()
        finally:
            undo()
        assert first.cause == "guest exited with status 0"
        stats = machine.statistics()["cpu0"]
        assert result.cause == "all CPUs halted"
        assert stats["num_vm_exits"] > 400
        # One pluggy call of each kind for the whole run, none per exit.
        assert monitor.count("kvmbase_exit_handlers") == 1
        assert len(monitor) == 3  # exit handlers, vm started, vcpu started
        assert plugin.hook_calls == {"exit_handlers": 1, "vm_started": 1, "vcpu_started": 1}
        assert plugin.vms == [machine.vm]
        assert plugin.cpus == [machine.cpu]
        # The plugin's handler served the HLT; the base still counted it.
        assert len(plugin.halts) == 1
        assert stats["num_halt"] == 1
        assert plugin.halts[0] == machine.cpu.read_register("rip")


def test_dump_sections_from_plugins(plugin: RecordingPlugin) -> None:
    with demo_machine() as machine:
        machine.run()
        assert "exits" in machine.cpu.dump_sections()
        dump = machine.cpu.dump("exits", "regs")
        assert dump["exits"] == {"total": machine.cpu.stats.num_vm_exits}
        assert dump["regs"]["rip"] == machine.cpu.read_register("rip")
        with pytest.raises(KeyError, match="no dump section 'nope'"):
            machine.cpu.dump("nope")


def test_commands_from_plugins(plugin: RecordingPlugin) -> None:
    _add_plugin_commands()
    try:
        result = CliRunner().invoke(cli, ["hello"])
        assert result.exit_code == 0
        assert result.output == "hello from a plugin\n"
        # A plugin command's failure is one message and status 1, like ours.
        failing = CliRunner().invoke(cli, ["fail"])
        assert failing.exit_code == 1
        assert "kvmbase: error: the plugin could not" in failing.output
        assert failing.exception is None or isinstance(failing.exception, SystemExit)
    finally:
        cli.commands.pop("hello", None)
        cli.commands.pop("fail", None)


def test_plugins_without_an_architecture_are_listed(plugin: RecordingPlugin) -> None:
    assert "recording-test-plugin" in other_plugins()
    assert "x86" not in other_plugins()
