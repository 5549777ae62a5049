"""The ``kvmbase`` command: a thin layer over the Python API.

Every command does what a few lines of Python do with :class:`Machine`,
:class:`Kvm` and :mod:`kvmbase.plugins`; this module only parses arguments
and renders tables.  Errors print one message, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from kvmbase import __version__
from kvmbase.config import ConfigError, load_machine_config, machine_json_schema
from kvmbase.errors import GuestError, KvmbaseError
from kvmbase.kvm import CAPABILITIES, DEFAULT_DEVICE, Kvm, host_flavour, host_machine
from kvmbase.machine import Machine, RunResult
from kvmbase.plugins import (
    architectures,
    broken_plugins,
    check_machine_config,
    config_models,
    install_hint,
    other_plugins,
    plugin_manager,
    registry,
)
from kvmbase.sim.eventq import TICKS_PER_SECOND
from kvmbase.stats import DESCRIPTIONS

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]kvmbase: error:[/] {message}", markup=True)
    sys.exit(code)


def reports_errors(function: F) -> F:
    """Turn kvmbase's exceptions into one message and an exit status."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                err.print(line, markup=False)
            sys.exit(2)
        except GuestError as exc:
            err.print(f"[bold red]kvmbase: guest error:[/] {exc}")
            if exc.state and "regs" in exc.state:
                err.print(_registers_table(exc.state["regs"], "registers when it happened"))
            sys.exit(1)
        except KvmbaseError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def _registers_table(registers: Mapping[str, Any], title: str) -> Table:
    # Three name/value pairs a row fit 80 columns, where pipes are rendered.
    per_row = 3
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    for _ in range(per_row):
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
    items = list(registers.items())
    for index in range(0, len(items), per_row):
        row: list[str] = []
        for name, value in items[index : index + per_row]:
            row += [name, f"{value:#018x}" if isinstance(value, int) else str(value)]
        table.add_row(*row)
    return table


def _open_kvm(device: str) -> Kvm:
    return Kvm(device)


# ----------------------------------------------------------------------
# The group
# ----------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kvmbase")
@click.option(
    "--kvm-device",
    default=DEFAULT_DEVICE,
    envvar="KVMBASE_KVM_DEVICE",
    show_default=True,
    help="The KVM device to open.",
)
@click.pass_context
def cli(ctx: click.Context, kvm_device: str) -> None:
    """Run hardware-virtualized CPUs (Linux KVM) under a Python simulator."""
    ctx.obj = {"kvm_device": kvm_device}


# ----------------------------------------------------------------------
# run
# ----------------------------------------------------------------------
@cli.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--max-ticks", type=click.IntRange(min=1), help="Stop at this tick (1 ps each).")
@click.option("--uart", "uart_output", help="UART output: stdout, stderr, none or a file.")
@click.option("--stats/--no-stats", default=True, show_default=True, help="Print statistics.")
@click.option("--json", "as_json", is_flag=True, help="Print the result and statistics as JSON.")
@click.pass_context
@reports_errors
def run(
    ctx: click.Context,
    config: Path | None,
    max_ticks: int | None,
    uart_output: str | None,
    stats: bool,
    as_json: bool,
) -> None:
    """Run a machine: CONFIG (TOML, YAML or JSON), or the bundled demo."""
    arches = architectures()
    if config is None:
        demos = [arch for arch in arches.values() if arch.demo_config and arch.runs_on_host()[0]]
        if not arches:
            fail(f"no architecture plugin is installed; {install_hint()}")
        if not demos:
            fail(f"no installed architecture has a demo that runs on this {host_machine()} "
                 f"host; {install_hint()}")
        demo = demos[0].demo_config
        assert demo is not None
        kvm = _open_kvm(ctx.obj["kvm_device"])
        machine = Machine.from_data(demo(), kvm=kvm, uart_output=uart_output)
    else:
        machine_config = load_machine_config(config, config_models())
        # Every config error before /dev/kvm is touched (Machine checks again).
        check_machine_config(machine_config, source=str(config))
        kvm = _open_kvm(ctx.obj["kvm_device"])
        machine = Machine(machine_config, kvm=kvm, uart_output=uart_output, source=str(config))
    try:
        result = machine.run(max_ticks)
        statistics = machine.statistics()
    finally:
        machine.close()
        kvm.close()
    if as_json:
        out.print_json(json.dumps({"result": vars(result), "statistics": statistics}))
    else:
        _print_result(result, statistics if stats else None)
    sys.exit(result.code)


def _print_result(result: RunResult, statistics: dict[str, dict[str, int]] | None) -> None:
    seconds = result.tick / TICKS_PER_SECOND
    if statistics:
        for cpu_name, values in statistics.items():
            table = Table(title=f"statistics of {cpu_name}")
            table.add_column("statistic")
            table.add_column("value", justify="right")
            table.add_column("description")
            for name, value in values.items():
                table.add_row(name, f"{value:,}", DESCRIPTIONS.get(name, ""))
            out.print(table)
    out.print(
        f"{result.cause} (code {result.code}) at tick {result.tick:,} "
        f"({seconds:.6f} s simulated, {result.host_seconds:.3f} s on the host)"
    )


# ----------------------------------------------------------------------
# caps
# ----------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
@reports_errors
def caps(ctx: click.Context, as_json: bool) -> None:
    """Print this host's KVM capabilities."""
    from kvmbase.perf import probe_guest_counters

    with _open_kvm(ctx.obj["kvm_device"]) as kvm:
        values = kvm.capabilities()
        cycles, instructions, why = probe_guest_counters()
        facts = {
            "device": kvm.path,
            "host machine": host_machine(),
            "KVM flavour": host_flavour(),
            "API version": kvm.api_version,
            "vCPU mmap size": kvm.vcpu_mmap_size,
            "kick method": "immediate_exit + signal"
            if values["IMMEDIATE_EXIT"]
            else "signal with KVM_SET_SIGNAL_MASK",
            "guest cycle counter": "yes" if cycles else f"no ({why})",
            "guest instruction counter": "yes" if instructions else f"no ({why})",
            "guest time from": "perf cycle counter" if cycles else "host monotonic clock",
        }
    if as_json:
        out.print_json(json.dumps({"host": facts, "capabilities": values}))
        return
    host = Table(title="host", show_header=False)
    for key, value in facts.items():
        host.add_row(key, str(value))
    out.print(host)
    table = Table(title="KVM capabilities")
    table.add_column("capability")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    for cap in CAPABILITIES:
        value = values[cap.name]
        shown = "no" if value == 0 else ("yes" if value == 1 else str(value))
        table.add_row(f"KVM_CAP_{cap.name}", shown, cap.meaning)
    out.print(table)


# ----------------------------------------------------------------------
# plugins
# ----------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
@reports_errors
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed architecture plugins and whether each runs here."""
    from kvmbase.kvm import kvm_usable

    usable, why_not = kvm_usable(ctx.obj["kvm_device"])
    rows: list[dict[str, Any]] = []
    for name, arch in sorted(architectures().items()):
        runs, why = arch.runs_on_host()
        if runs and not usable:
            runs, why = False, why_not
        rows.append(
            {
                "name": name,
                "distribution": arch.distribution,
                "version": arch.version,
                "hosts": list(arch.host_machines),
                "runs here": runs,
                "why": why,
                "summary": arch.summary,
            }
        )
    broken = [vars(plugin) for plugin in broken_plugins()]
    others = other_plugins()
    if as_json:
        out.print_json(json.dumps({"architectures": rows, "other": others, "broken": broken}))
        return
    if not rows:
        out.print(f"no architecture plugin is installed; {install_hint()}")
    else:
        table = Table(title="architecture plugins")
        for column in ("name", "distribution", "version", "hosts", "runs here", "summary"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["name"],
                row["distribution"],
                row["version"],
                ", ".join(row["hosts"]),
                ("yes" if row["runs here"] else "no") + f" ({row['why']})",
                row["summary"],
            )
        out.print(table)
    if others:
        out.print("other plugins: " + ", ".join(others))
    for plugin in broken:
        err.print(
            f"[red]broken plugin[/] {plugin['name']} ({plugin['distribution']}): {plugin['error']}"
        )


# ----------------------------------------------------------------------
# config
# ----------------------------------------------------------------------
@cli.group()
def config() -> None:
    """Check machine configs and print their schema."""


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@reports_errors
def config_check(files: tuple[Path, ...]) -> None:
    """Validate config FILES; report every error with its field path."""
    models = config_models()
    failed = False
    for path in files:
        try:
            machine = load_machine_config(path, models)
            check_machine_config(machine, source=str(path))
        except ConfigError as exc:
            failed = True
            for line in str(exc).splitlines():
                err.print(line, markup=False)
            continue
        out.print(f"{path}: ok (arch {machine.arch}, {len(machine.devices)} devices)")
    if failed:
        sys.exit(2)


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of machine configs (with installed plugins' sections)."""
    click.echo(json.dumps(machine_json_schema(config_models()), indent=2))


def _add_plugin_commands() -> None:
    registry()
    before = set(cli.commands)
    plugin_manager().hook.kvmbase_add_commands(cli=cli)
    # A plugin's command fails the way ours do: one message, no traceback.
    for name in set(cli.commands) - before:
        command = cli.commands[name]
        if command.callback is not None:
            command.callback = reports_errors(command.callback)


def main() -> None:
    logging.basicConfig(format="kvmbase: %(levelname)s: %(message)s", level=logging.WARNING)
    try:
        _add_plugin_commands()
    except KvmbaseError as exc:
        fail(str(exc))
    cli(prog_name="kvmbase")


if __name__ == "__main__":
    main()
