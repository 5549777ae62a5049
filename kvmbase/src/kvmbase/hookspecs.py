"""The hooks kvmbase plugins implement (pluggy, project name ``kvmbase``).

Hooks run at set-up time only.  Where a plugin takes part in the exit path
it hands back callables here and the CPU calls those directly: a pluggy
call costs about as much as a VM exit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from kvmbase.arch import ArchDescription
    from kvmbase.cpu import BaseKvmCPU
    from kvmbase.vm import KvmVM

PROJECT_NAME = "kvmbase"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def kvmbase_register_arch() -> ArchDescription | None:
    """Describe the architecture this plugin provides."""


@hookspec
def kvmbase_exit_handlers(cpu: BaseKvmCPU) -> Mapping[int, Callable[[BaseKvmCPU], int]] | None:
    """Extra exit handlers by KVM exit reason, each ``handler(cpu) -> ticks``.

    Collected once when the vCPU starts; the exit loop then calls them directly.
    """


@hookspec
def kvmbase_vm_started(vm: KvmVM) -> None:
    """The VM has mapped its memory and is about to get its first vCPU."""


@hookspec
def kvmbase_vcpu_started(cpu: BaseKvmCPU) -> None:
    """A vCPU exists in KVM and is about to run."""


@hookspec
def kvmbase_dump_sections(cpu: BaseKvmCPU) -> Mapping[str, Callable[[], Any]] | None:
    """Extra named sections for ``cpu.dump()``, each a callable returning data."""


@hookspec
def kvmbase_add_commands(cli: click.Group) -> None:
    """Add subcommands to the ``kvmbase`` command."""
