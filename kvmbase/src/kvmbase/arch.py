"""What an architecture plugin tells the core about itself."""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from kvmbase.config import ConfigIssue, MachineConfig
    from kvmbase.cpu import BaseKvmCPU
    from kvmbase.machine import Machine
    from kvmbase.sim.thread_context import ThreadContext


@dataclass(frozen=True)
class ArchDescription:
    """An architecture as a plugin registers it (``kvmbase_register_arch``)."""

    #: the name configs use (``arch = "x86"``)
    name: str
    summary: str
    #: the distribution to install for it (``kvm-x86``)
    distribution: str
    version: str
    #: host machine names (``platform.machine()``) it runs on
    host_machines: tuple[str, ...]
    cpu_class: type[BaseKvmCPU]
    thread_context_class: type[ThreadContext]
    #: the model of the plugin's own config section
    config_model: type[BaseModel]
    #: create the CPUs of a machine and set their boot state
    setup_machine: Callable[[Machine], None]
    #: apply the config to a CPU made after set-up (Machine.new_cpu)
    configure_cpu: Callable[[Machine, BaseKvmCPU], None] | None = None
    #: where a legacy IO port appears on the bus; None if the ISA has no ports
    port_address: Callable[[int], int] | None = None
    #: the raw config of the bundled demo machine
    demo_config: Callable[[], Mapping[str, Any]] | None = None
    #: rules across sections the plugin's model cannot see alone (RAM the
    #: architecture needs, where its tables sit): the problems found
    check_config: Callable[[MachineConfig], list[ConfigIssue]] | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def runs_on_host(self) -> tuple[bool, str]:
        machine = platform.machine()
        if machine not in self.host_machines:
            return False, f"host is {machine}; {self.name} runs on {', '.join(self.host_machines)}"
        return True, f"host is {machine}"
