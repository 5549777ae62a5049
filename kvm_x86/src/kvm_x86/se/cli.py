"""``kvmbase exec``: the x86 plugin's command for syscall-emulation mode."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kvm_x86.se.config import load_exec_config
from kvm_x86.se.elf import ElfError
from kvm_x86.se.process import DEFAULT_RAM, exec_program


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--trace-syscalls", is_flag=True, help="print each system call to stderr")
@click.option("--stats", is_flag=True, help="print system-call statistics to stderr at the end")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the program, its arguments, environment and settings from this file "
    "(an [exec] section; ARGS given here are added to its args).",
)
@click.argument("program", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def exec_command(trace_syscalls: bool, stats: bool, config_path: Path | None,
                 program: str | None, args: tuple[str, ...]) -> None:
    """Run a static x86-64 Linux PROGRAM under KVM, its system calls served
    in Python; exit with the program's status.

    Guest processes fork as host processes; threads are not emulated.
    """
    env: dict[str, str] | None = None
    cwd: str | None = None
    ram_size = DEFAULT_RAM
    if config_path is not None:
        section = load_exec_config(config_path)
        argv = [section.program, *section.args, *([program] if program else []), *args]
        env, cwd, ram_size = section.env, section.cwd, section.ram_size
        trace_syscalls = trace_syscalls or section.trace_syscalls
        stats = stats or section.stats
    elif program is None:
        raise click.UsageError("give a PROGRAM, or --config FILE")
    else:
        argv = [program, *args]
    try:
        status = exec_program(argv, env, cwd, trace=trace_syscalls, stats=stats,
                              ram_size=ram_size)
    except (ElfError, FileNotFoundError, PermissionError) as exc:
        click.echo(f"kvmbase exec: {exc}", err=True)
        sys.exit(127 if isinstance(exc, FileNotFoundError) else 126)
    sys.exit(status)


def add_commands(cli: click.Group) -> None:
    cli.add_command(exec_command)
