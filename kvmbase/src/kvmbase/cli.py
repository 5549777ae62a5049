"""The ``kvmbase`` command: a thin layer over the Python API.

Every command does what a few lines of Python do with :class:`Machine`,
:class:`Kvm` and :mod:`kvmbase.plugins`; this module only parses arguments
and renders tables.  Errors print one message, never a traceback.
"""

from __future__ import annotations

import json
import logging
import string
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial, wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich import box
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table

from kvmbase import __version__, hookspecs
from kvmbase.arch import ArchDescription
from kvmbase.config import ConfigError, load_machine_config, machine_json_schema
from kvmbase.cpu import BaseKvmCPU
from kvmbase.errors import GuestError, KvmbaseError
from kvmbase.kvm import CAPABILITIES, DEFAULT_DEVICE, Kvm, host_flavour, host_machine
from kvmbase.machine import Machine, RunResult
from kvmbase.plugins import (
    SUGGESTED_PLUGINS,
    architectures,
    broken_plugins,
    check_machine_config,
    config_models,
    install_hint,
    other_plugins,
    plugin_manager,
    registry,
)
from kvmbase.scaffold.command import new_plugin
from kvmbase.sim.eventq import TICKS_PER_SECOND
from kvmbase.sim.guest_ops import StatsDump
from kvmbase.sim.uart import Uart16550
from kvmbase.stats import DESCRIPTIONS

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
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
def _demo_config(
    arches: dict[str, ArchDescription], name: str | None
) -> Callable[[], Mapping[str, Any]]:
    """The demo of ``name``, or of the host's own architecture (or the first that runs)."""
    if name is not None:
        if name not in arches:
            fail(f"--arch {name}: not installed; installed: {', '.join(sorted(arches))}")
        chosen = arches[name]
        runs, why = chosen.runs_on_host()
        if not runs:
            fail(f"--arch {name}: its demo cannot run here ({why})")
        if chosen.demo_config is None:
            fail(f"--arch {name}: the plugin has no demo")
        return chosen.demo_config
    demos = [arch for arch in arches.values() if arch.demo_config and arch.runs_on_host()[0]]
    if not demos:
        fail(f"no installed architecture has a demo that runs on this {host_machine()} "
             f"host; {install_hint()}")
    own = SUGGESTED_PLUGINS.get(host_machine())
    demos.sort(key=lambda arch: (arch.distribution != own, arch.name))
    demo = demos[0].demo_config
    assert demo is not None
    return demo


@cli.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--max-ticks", type=click.IntRange(min=1), help="Stop at this tick (1 ps each).")
@click.option("--uart", "uart_output", help="UART output: stdout, stderr, none or a file.")
@click.option("--stats/--no-stats", default=True, show_default=True, help="Print statistics.")
@click.option(
    "--dump",
    "dump",
    metavar="SECTIONS",
    help="After the run, print these vCPU state sections (a comma list, or 'all').",
)
@click.option(
    "--checkpoint-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where checkpoints the guest asks for go (overrides the guest-ops device's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result and statistics as JSON.")
@click.option(
    "--arch",
    "demo_arch",
    metavar="NAME",
    help="Without CONFIG: run this architecture's demo (default: the host's own).",
)
@click.pass_context
@reports_errors
def run(
    ctx: click.Context,
    config: Path | None,
    max_ticks: int | None,
    uart_output: str | None,
    stats: bool,
    dump: str | None,
    checkpoint_dir: Path | None,
    as_json: bool,
    demo_arch: str | None,
) -> None:
    """Run a machine: CONFIG (TOML, YAML or JSON), or the bundled demo.

    The exit status is the run's code: the guest's status when it ends
    through its guest-ops device (255 for a status above 255).
    """
    requested = _parse_sections(dump) if dump is not None else None
    arches = architectures()
    options: dict[str, Any] = {"uart_output": uart_output, "checkpoint_dir": checkpoint_dir}
    if config is not None and demo_arch is not None:
        fail("--arch picks a demo: give it without CONFIG (the config names its arch)")
    if config is None:
        if not arches:
            fail(f"no architecture plugin is installed; {install_hint()}")
        demo = _demo_config(arches, demo_arch)
        kvm = _open_kvm(ctx.obj["kvm_device"])
        try:
            machine = Machine.from_data(demo(), kvm=kvm, **options)
        except BaseException:
            kvm.close()
            raise
    else:
        machine_config = load_machine_config(config, config_models())
        # Every config error before /dev/kvm is touched (Machine checks again).
        check_machine_config(machine_config, source=str(config))
        kvm = _open_kvm(ctx.obj["kvm_device"])
        try:
            machine = Machine(machine_config, kvm=kvm, source=str(config), **options)
        except BaseException:
            kvm.close()
            raise
    try:
        # Unknown sections are refused before the guest runs.
        sections = _check_sections(requested, machine.cpu) if requested is not None else None
        if machine.guest_ops is not None and not as_json:
            machine.guest_ops.on_stats_dump = partial(_print_guest_stats_dump, machine)
        result = machine.run(max_ticks)
        statistics = machine.statistics()
        dumps = (
            {cpu.name: _take_dump(cpu, sections) for cpu in machine.active_cpus}
            if sections is not None
            else None
        )
        guest_ops = machine.guest_ops
        checkpoints = [vars(c) for c in guest_ops.checkpoints] if guest_ops is not None else []
        stats_dumps = [vars(d) for d in guest_ops.stats_dumps] if guest_ops is not None else []
    finally:
        machine.close()
        kvm.close()
    if as_json:
        report: dict[str, Any] = {"result": vars(result), "statistics": statistics}
        if machine.guest_ops is not None:
            report["guest_ops"] = {"stats_dumps": stats_dumps, "checkpoints": checkpoints}
        if dumps is not None:
            report["dumps"] = dumps
        out.print_json(json.dumps(report, default=_json_value))
    else:
        if stats:
            _print_statistics(statistics)
        if dumps is not None:
            _print_dumps(dumps)
        for checkpoint in checkpoints:
            out.print(
                f"guest checkpoint {checkpoint['number']} (tag {checkpoint['tag']:#x}) "
                f"at tick {checkpoint['tick']:,}: {checkpoint['path']}"
            )
        _print_result(result)
    sys.exit(_exit_status(result.code))


def _exit_status(code: int) -> int:
    """A run's code as a process exit status; one the shell cannot carry is 255."""
    return code if 0 <= code <= 255 else 255


def _json_value(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _statistics_table(title: str, values: Mapping[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    table.add_column("description")
    for name, value in values.items():
        table.add_row(name, f"{value:,}", DESCRIPTIONS.get(name, ""))
    return table


def _print_statistics(statistics: Mapping[str, Mapping[str, int]]) -> None:
    for cpu_name, values in statistics.items():
        out.print(_statistics_table(f"statistics of {cpu_name}", values))


def _print_guest_stats_dump(machine: Machine, dump: StatsDump) -> None:
    # What the guest printed before asking comes first.
    for device in machine.devices.values():
        if isinstance(device, Uart16550):
            device.flush()
    for cpu_name, values in dump.statistics.items():
        title = (
            f"statistics of {cpu_name}, dump {dump.number} asked for by the guest "
            f"(tag {dump.tag:#x}) at tick {dump.tick:,}"
        )
        out.print(_statistics_table(title, values))


def _print_result(result: RunResult) -> None:
    seconds = result.tick / TICKS_PER_SECOND
    out.print(
        f"{result.cause} (code {result.code}) at tick {result.tick:,} "
        f"({seconds:.6f} s simulated, {result.host_seconds:.3f} s on the host)"
    )


# ----------------------------------------------------------------------
# run --dump: which sections, and the tables they make
# ----------------------------------------------------------------------
ALL_SECTIONS = "all"
#: a long hex string is shown as lines of this many bytes
_HEX_LINE_BYTES = 16
#: lists of scalars longer than this get a table of their own
_INLINE_LIST_ITEMS = 8
#: name/value pairs side by side fit in this many columns
_PAIRS_WIDTH = 78


def _parse_sections(text: str) -> list[str]:
    """The names of a ``--dump`` value, in order, without repeats."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise click.BadParameter("name at least one section, or 'all'", param_hint="--dump")
    return names


def _check_sections(names: Sequence[str], cpu: BaseKvmCPU) -> list[str]:
    """``names`` checked against the CPU's sections; [] stands for all."""
    if ALL_SECTIONS in names:
        return [] if len(names) == 1 else _refuse_sections(names, cpu)
    known = cpu.dump_sections()
    unknown = [name for name in names if name not in known]
    if unknown:
        _refuse_sections(unknown, cpu)
    return list(names)


def _refuse_sections(names: Sequence[str], cpu: BaseKvmCPU) -> NoReturn:
    valid = ", ".join(cpu.dump_sections())
    if ALL_SECTIONS in names:
        fail(f"--dump all stands alone; the sections are: {valid}", 2)
    shown = ", ".join(repr(name) for name in names)
    noun = "section" if len(names) == 1 else "sections"
    fail(f"unknown dump {noun} {shown}; valid sections: {valid} (or all)", 2)


def _take_dump(cpu: BaseKvmCPU, sections: list[str]) -> dict[str, Any]:
    """The CPU's dump of ``sections`` (none named: every section it has now)."""
    if not sections:
        return cpu.dump()
    result: dict[str, Any] = {}
    for section in sections:
        try:
            result.update(cpu.dump(section))
        except KeyError:
            # Listed before the run, but the vCPU found at start-up that the
            # host cannot give it.
            err.print(f"kvmbase: warning: {cpu.name}: section {section!r} is not available "
                      "on this host", markup=False)
    return result


def _print_dumps(dumps: Mapping[str, Mapping[str, Any]]) -> None:
    for cpu_name, sections in dumps.items():
        for section, data in sections.items():
            for renderable in _dump_renderables(f"{cpu_name} {section}", data):
                _print_unclipped(renderable)


def _print_unclipped(renderable: RenderableType) -> None:
    """Print without cutting values short, even when wider than the console."""
    needed = Measurement.get(out, out.options.update_width(1 << 16), renderable).maximum
    width = out.width
    if needed <= width:
        out.print(renderable)
        return
    out.width = needed
    try:
        out.print(renderable)
    finally:
        out.width = width


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (int, float, str, bytes, bytearray))


def _hex_bytes(data: bytes) -> str | None:
    """``data`` as hexdump lines (offset, then 4-byte groups); repeats as ``*``."""
    if len(data) <= _HEX_LINE_BYTES:
        return None
    lines: list[str] = []
    previous = None
    for offset in range(0, len(data), _HEX_LINE_BYTES):
        chunk = data[offset : offset + _HEX_LINE_BYTES]
        if chunk == previous and offset + _HEX_LINE_BYTES < len(data):
            if lines[-1] != "*":
                lines.append("*")
            continue
        previous = chunk
        groups = " ".join(chunk[i : i + 4].hex() for i in range(0, len(chunk), 4))
        lines.append(f"{offset:04x}  {groups}")
    return "\n".join(lines)


def _format_scalar(value: object) -> str:
    """A value as text: integers in hex (0-9 bare), long byte strings wrapped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # 0-9 read the same in hex: flags and small fields stay narrow.
        return str(value) if 0 <= value <= 9 else f"{value:#x}"
    if isinstance(value, (bytes, bytearray)):
        return _hex_bytes(bytes(value)) or bytes(value).hex()
    if isinstance(value, str):
        # Byte arrays often come as hex strings (FPU registers, XSAVE).
        if len(value) > 2 * _HEX_LINE_BYTES and len(value) % 2 == 0 and all(
            c in string.hexdigits for c in value
        ):
            return _hex_bytes(bytes.fromhex(value)) or value
        return value
    if value is None:
        return "-"
    return str(value)


def _inline(values: Sequence[Any]) -> str:
    return " ".join(_format_scalar(value) for value in values)


def _pairs_table(title: str | None, pairs: Sequence[tuple[str, str]]) -> Table:
    """Name/value pairs, several to a row when they are short."""
    widest = max(len(name) + max(map(len, value.splitlines() or [""])) for name, value in pairs)
    multi_line = any("\n" in value for _, value in pairs)
    per_row = 1 if multi_line else max(1, min(3, _PAIRS_WIDTH // (widest + 4)))
    table = Table(title=title, show_header=False, box=None, pad_edge=False, title_justify="left")
    for _ in range(per_row):
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
    for index in range(0, len(pairs), per_row):
        row: list[str] = []
        for name, value in pairs[index : index + per_row]:
            row += [name, value]
        table.add_row(*row)
    return table


def _grid_table(title: str, rows: Mapping[str, Mapping[str, Any]]) -> Table:
    """Dicts with the same keys: one row each, or one column each if narrower."""
    keys = list(next(iter(rows.values())))
    cells = {name: [_format_scalar(row[key]) for key in keys] for name, row in rows.items()}

    def width(columns: Iterable[Sequence[str]]) -> int:
        return sum(max(map(len, column)) + 2 for column in columns)

    by_row = width([list(rows), *zip(*cells.values(), strict=True)]) + width([keys])
    by_column = width([keys]) + width([[name, *values] for name, values in cells.items()])
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title_justify="left",
        pad_edge=False,
        collapse_padding=True,
    )
    if by_row <= by_column:
        table.add_column("", style="bold", no_wrap=True)
        for key in keys:
            table.add_column(key, justify="right", no_wrap=True)
        for name, values in cells.items():
            table.add_row(name, *values)
    else:
        table.add_column("", style="bold", no_wrap=True)
        for name in cells:
            table.add_column(name, justify="right", no_wrap=True)
        for index, key in enumerate(keys):
            table.add_row(key, *(values[index] for values in cells.values()))
    return table


def _list_table(title: str, values: Sequence[Any]) -> Table:
    """A long list of scalars: an index column, several values to a row."""
    cells = [_format_scalar(value) for value in values]
    widest = max(max(map(len, cell.splitlines() or [""])) for cell in cells)
    multi_line = any("\n" in cell for cell in cells)
    per_row = 1 if multi_line else max(1, min(8, (_PAIRS_WIDTH - 6) // (widest + 2)))
    table = Table(title=title, show_header=False, box=None, pad_edge=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    for _ in range(per_row):
        table.add_column(justify="right", no_wrap=True)
    for index in range(0, len(cells), per_row):
        table.add_row(f"[{index}]", *cells[index : index + per_row])
    return table


def _dump_renderables(title: str, data: Any) -> list[RenderableType]:
    """Tables showing any nest of dicts, lists and scalars.

    Scalars of a dict go into one name/value table; sibling dicts of scalars
    with the same keys (segments, CPUID leaves) into one grid; long lists
    into tables of their own; anything deeper recursively, titled by path.
    """
    if _is_scalar(data):
        return [_pairs_table(title, [("value", _format_scalar(data))])]
    if isinstance(data, Mapping):
        return _mapping_renderables(title, data)
    items = list(data)
    if not items:
        return [_pairs_table(title, [("", "(empty)")])]
    if all(_is_scalar(item) for item in items):
        return [_list_table(title, items)]
    if all(isinstance(item, Mapping) and item and all(map(_is_scalar, item.values()))
           for item in items) and len({tuple(item) for item in items}) == 1:
        return [_grid_table(title, {f"[{i}]": item for i, item in enumerate(items)})]
    renderables: list[RenderableType] = []
    for index, item in enumerate(items):
        renderables += _dump_renderables(f"{title}[{index}]", item)
    return renderables


def _mapping_renderables(title: str, data: Mapping[Any, Any]) -> list[RenderableType]:
    pairs: list[tuple[str, str]] = []
    groups: dict[tuple[str, ...], dict[str, Mapping[str, Any]]] = {}
    rest: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = str(key)
        if _is_scalar(value):
            pairs.append((name, _format_scalar(value)))
        elif (isinstance(value, (list, tuple)) and len(value) <= _INLINE_LIST_ITEMS
              and all(isinstance(item, (int, float)) or item is None for item in value)):
            pairs.append((name, _inline(value) if value else "(empty)"))
        elif isinstance(value, Mapping) and value and all(map(_is_scalar, value.values())):
            groups.setdefault(tuple(map(str, value)), {})[name] = value
        else:
            rest.append((name, value))
    renderables: list[RenderableType] = []
    if pairs:
        renderables.append(_pairs_table(title, pairs))
    for members in groups.values():
        names = list(members)
        if len(members) == 1:
            (name, value), = members.items()
            renderables += _mapping_renderables(f"{title}.{name}", value)
            continue
        shown = ", ".join(names) if len(names) <= 4 else f"{names[0]} ... {names[-1]}"
        renderables.append(_grid_table(f"{title}: {shown}", members))
    for name, value in rest:
        renderables += _dump_renderables(f"{title}.{name}", value)
    if not renderables:
        renderables.append(_pairs_table(title, [("", "(empty)")]))
    return renderables


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
def _hook_implementations() -> dict[str, list[str]]:
    """Each hook of the spec, with the plugins that implement it."""
    manager = plugin_manager()
    return {
        name: [impl.plugin_name for impl in getattr(manager.hook, name).get_hookimpls()]
        for name in sorted(vars(hookspecs))
        if name.startswith("kvmbase_")
    }


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--hooks", "show_hooks", is_flag=True, help="Also list which plugin implements "
              "which hook.")
@click.pass_context
@reports_errors
def plugins(ctx: click.Context, as_json: bool, show_hooks: bool) -> None:
    """List installed architecture plugins, whether each runs here, and how far
    the conformance suite (kvmbase.testing) can check it on this host."""
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
                "conformance": "the whole suite" if runs
                else f"registration and config only ({why})",
                "summary": arch.summary,
            }
        )
    broken = [vars(plugin) for plugin in broken_plugins()]
    others = other_plugins()
    hooks = _hook_implementations() if show_hooks else None
    if as_json:
        report: dict[str, Any] = {"architectures": rows, "other": others, "broken": broken}
        if hooks is not None:
            report["hooks"] = hooks
        out.print_json(json.dumps(report))
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
    if hooks is not None:
        hook_table = Table(title="hooks")
        hook_table.add_column("hook")
        hook_table.add_column("implemented by")
        for hook, names in hooks.items():
            hook_table.add_row(hook, ", ".join(names) or "-")
        out.print(hook_table)
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


cli.add_command(new_plugin)


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
