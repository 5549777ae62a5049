"""kvmbase: run hardware-virtualized CPUs (Linux KVM) under a Python simulator."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kvmbase")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

from kvmbase.config import ConfigError, MachineConfig
from kvmbase.cpu import BaseKvmCPU, RunState
from kvmbase.errors import (
    BusError,
    CheckpointError,
    ConfigurationError,
    EmulationFailureError,
    GuestError,
    GuestShutdownError,
    KvmbaseError,
    KvmCapabilityError,
    KvmIoctlError,
    KvmUnavailableError,
    PluginError,
    SimulationError,
    UnhandledExitError,
)
from kvmbase.hookspecs import hookimpl
from kvmbase.kvm import Kvm
from kvmbase.machine import Machine, RunResult
from kvmbase.vm import KvmVM

__all__ = [
    "BaseKvmCPU",
    "BusError",
    "CheckpointError",
    "ConfigError",
    "ConfigurationError",
    "EmulationFailureError",
    "GuestError",
    "GuestShutdownError",
    "Kvm",
    "KvmCapabilityError",
    "KvmIoctlError",
    "KvmUnavailableError",
    "KvmVM",
    "KvmbaseError",
    "Machine",
    "MachineConfig",
    "PluginError",
    "RunResult",
    "RunState",
    "SimulationError",
    "UnhandledExitError",
    "__version__",
    "hookimpl",
]
