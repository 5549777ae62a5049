"""``kvmbase exec``: the x86 plugin's command for syscall-emulation mode."""

from __future__ import annotations

import sys

import click

from kvm_x86.se.elf import ElfError
from kvm_x86.se.process import exec_program


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--trace-syscalls", is_flag=True, help="print each system call to stderr")
@click.option("--stats", is_flag=True, help="print system-call statistics to stderr at the end")
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def exec_command(trace_syscalls: bool, stats: bool, program: str, args: tuple[str, ...]) -> None:
    """Run a static x86-64 Linux PROGRAM under KVM, its system calls served
    in Python; exit with the program's status.

    Guest processes fork as host processes; threads are not emulated.
    """
    try:
        status = exec_program([program, *args], trace=trace_syscalls, stats=stats)
    except (ElfError, FileNotFoundError, PermissionError) as exc:
        click.echo(f"kvmbase exec: {exc}", err=True)
        sys.exit(127 if isinstance(exc, FileNotFoundError) else 126)
    sys.exit(status)


def add_commands(cli: click.Group) -> None:
    cli.add_command(exec_command)
