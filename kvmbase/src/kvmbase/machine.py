"""``Machine``: a whole guest machine built from a config, in a few lines.

    >>> machine = Machine.from_file("demo.toml")
    >>> result = machine.run()
    >>> machine.cpu.read_register("rax")
    >>> machine.checkpoint("ckpt")
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from kvmbase.arch import ArchDescription
from kvmbase.config import (
    GuestOpsConfig,
    MachineConfig,
    MmioScratchConfig,
    Uart16550Config,
    dump_machine_config,
    load_machine_config,
    validate_machine_config,
)
from kvmbase.cpu import BaseKvmCPU
from kvmbase.errors import ConfigurationError, PluginError
from kvmbase.kvm import Kvm
from kvmbase.plugins import check_machine_config, config_models, get_arch, notify_vm_started
from kvmbase.sim.bus import Device
from kvmbase.sim.checkpoint import read_manifest, restore_checkpoint, write_checkpoint
from kvmbase.sim.eventq import MAX_TICK
from kvmbase.sim.guest_ops import CHECKPOINT_CAUSE, PAGE_SIZE, GuestOpsDevice
from kvmbase.sim.memory import GuestMemory
from kvmbase.sim.scratch import ScratchDevice
from kvmbase.sim.system import System
from kvmbase.sim.thread_context import ThreadStatus
from kvmbase.sim.uart import REGISTER_SPAN, Uart16550
from kvmbase.vm import KvmVM


@dataclass(frozen=True)
class RunResult:
    """How a :meth:`Machine.run` ended."""

    cause: str
    code: int
    tick: int
    host_seconds: float


class Machine:
    """System, VM, CPUs and devices of one guest, built from a config."""

    def __init__(
        self,
        config: MachineConfig,
        *,
        kvm: Kvm | None = None,
        uart_output: str | IO[bytes] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        source: str | None = None,
    ) -> None:
        """``source`` names the config's file in error messages;
        ``checkpoint_dir`` overrides the guest-ops device's."""
        if checkpoint_dir is not None:
            config = _with_checkpoint_dir(config, os.fspath(checkpoint_dir))
        self.config = config
        self.arch: ArchDescription = get_arch(config.arch)
        check_machine_config(config, source=source)
        runs, why = self.arch.runs_on_host()
        if not runs:
            raise PluginError(f"the {self.arch.name} plugin cannot run here: {why}")
        self.system = System()
        self.cpus: list[BaseKvmCPU] = []
        self.devices: dict[str, Device] = {}
        #: the guest-operations page, if the config has one
        self.guest_ops: GuestOpsDevice | None = None
        self.uart_output = uart_output
        # Without use_coalesced_mmio no zone is registered: KVM would queue
        # writes in a ring the CPU does not read.
        coalesce = config.cpu.use_coalesced_mmio
        self.vm = KvmVM(
            kvm,
            host=self.system,
            coalesced_mmio=[(r.start, r.size) for r in config.vm.coalesced_mmio]
            if coalesce
            else [],
            # KVM matches port IO zones by port number, not bus address.
            coalesced_pio=[(r.start, r.size) for r in config.vm.coalesced_pio]
            if coalesce
            else [],
        )
        try:
            self.ram: GuestMemory = self.system.add_memory(
                config.vm.ram_base, config.vm.ram_size
            )
            for device_config in config.devices:
                self._add_configured_device(device_config)
            self.vm.on_started(notify_vm_started)
            if config.image is not None:
                self.load_image(config.image.path, config.image.load_address)
            self.arch.setup_machine(self)
        except BaseException:
            self.close()
            raise

    # -- construction ---------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Machine:
        """Load, validate and build the machine a config file describes."""
        return cls(load_machine_config(path, config_models()), source=os.fspath(path), **kwargs)

    @classmethod
    def from_data(
        cls, data: Mapping[str, Any], *, base_dir: Path | None = None, **kwargs: Any
    ) -> Machine:
        """Build from config data already parsed (a dict)."""
        return cls(validate_machine_config(data, config_models(), base_dir=base_dir), **kwargs)

    def port_address(self, port: int) -> int:
        """Where legacy IO port ``port`` sits on the bus (x86 remaps ports)."""
        if self.arch.port_address is None:
            raise ConfigurationError(f"{self.arch.name} has no port IO space")
        return self.arch.port_address(port)

    def _add_configured_device(self, device_config: Any) -> None:
        if isinstance(device_config, Uart16550Config):
            output = self.uart_output if self.uart_output is not None else device_config.output
            uart = Uart16550(device_config.name, output)
            if device_config.port is not None:
                start = self.port_address(device_config.port)
            else:
                assert device_config.address is not None
                start = device_config.address
            self.add_device(uart, start, REGISTER_SPAN)
        elif isinstance(device_config, MmioScratchConfig):
            scratch = ScratchDevice(device_config.name, device_config.size)
            self.add_device(scratch, device_config.address, device_config.size)
        elif isinstance(device_config, GuestOpsConfig):
            guest_ops = GuestOpsDevice(
                device_config.name, self.system, checkpoint_dir=device_config.checkpoint_dir
            )
            self.add_device(guest_ops, device_config.address, PAGE_SIZE)
            self.guest_ops = guest_ops
        else:
            raise ConfigurationError(f"device type {device_config.type!r} is not supported")

    def add_device(self, device: Device, start: int, size: int) -> Device:
        """Put ``device`` on the bus at ``[start, start+size)``."""
        if device.name in self.devices:
            raise ConfigurationError(f"a device named {device.name!r} exists already")
        try:
            self.system.attach_device(device, start, size)
        except ValueError as exc:  # overlaps RAM or another device
            raise ConfigurationError(str(exc)) from None
        self.devices[device.name] = device
        return device

    def load_image(self, path: str | os.PathLike[str], address: int) -> int:
        """Copy an image file into RAM at ``address``; return its size."""
        data = Path(path).read_bytes()
        try:
            self.system.write_memory(address, data)
        except IndexError:
            raise ConfigurationError(
                f"image {path} ({len(data)} bytes) does not fit in RAM at {address:#x}"
            ) from None
        return len(data)

    def add_cpu(self, cpu: BaseKvmCPU) -> BaseKvmCPU:
        """Add a CPU: the architecture's set-up does for the boot CPU; add a
        spare this way to switch to later (:meth:`switch_cpus`)."""
        self.cpus.append(cpu)
        return cpu

    def new_cpu(self, name: str) -> BaseKvmCPU:
        """A further CPU of the machine's architecture, switched out, to take
        over from a running one with :meth:`switch_cpus`."""
        cpu = self.arch.cpu_class(self.system, self.vm, config=self.config.cpu, name=name)
        cpu.switched_out = True
        self.add_cpu(cpu)
        if self.arch.configure_cpu is not None:
            self.arch.configure_cpu(self, cpu)
        return cpu

    def switch_cpus(self, old: BaseKvmCPU, new: BaseKvmCPU) -> None:
        """Drain, hand ``old``'s thread to ``new``, and carry on with ``new``."""
        self.drain()
        old.switch_out()
        new.take_over_from(old)
        self.drain_resume()

    @property
    def active_cpus(self) -> list[BaseKvmCPU]:
        """The CPUs that are not switched out."""
        return [cpu for cpu in self.cpus if not cpu.switched_out]

    @property
    def cpu(self) -> BaseKvmCPU:
        """The first CPU that is not switched out."""
        active = self.active_cpus
        if not active:
            raise ConfigurationError("the machine has no running CPU")
        return active[0]

    # -- running --------------------------------------------------------
    def run(self, max_ticks: int | None = None) -> RunResult:
        """Run until the guest stops, something asks to stop, or ``max_ticks``.

        Checkpoints the guest asks for (guest-ops device) are written on the
        way, and the run goes on: only a real stop ends this call.
        """
        limit = max_ticks if max_ticks is not None else self.config.max_ticks
        until = MAX_TICK if limit is None else limit
        started = time.perf_counter()
        try:
            while True:
                # A request left waiting (no directory then) goes first.
                self._write_guest_checkpoint()
                exit_event = self.system.run(until)
                if exit_event.cause != CHECKPOINT_CAUSE:
                    break
            # A request that came with another stop: write it, then stop.
            self._write_guest_checkpoint()
        finally:
            for device in self.devices.values():
                device.flush()
        cause = exit_event.cause
        if cause == "no events left to simulate" and all(
            cpu.thread.status is not ThreadStatus.ACTIVE for cpu in self.active_cpus
        ):
            cause = "all CPUs halted"
        return RunResult(cause, exit_event.code, exit_event.tick, time.perf_counter() - started)

    def _write_guest_checkpoint(self) -> None:
        """Serve a guest's waiting checkpoint request, outside any exit handler."""
        guest_ops = self.guest_ops
        if guest_ops is None or not guest_ops.checkpoint_requested:
            return
        checkpoint = guest_ops.take_checkpoint_request()
        if checkpoint is not None:
            self.checkpoint(checkpoint.path)
            guest_ops.checkpoint_written(checkpoint)

    def stop(self, cause: str = "stopped by request", code: int = 0) -> None:
        """End a run in progress; safe from another thread."""
        self.system.request_stop(cause, code)

    def drain(self) -> None:
        self.system.drain()

    def drain_resume(self) -> None:
        self.system.drain_resume()

    def statistics(self) -> dict[str, dict[str, int]]:
        """Each CPU's statistics by name (switched-out CPUs included)."""
        return {cpu.name: cpu.statistics() for cpu in self.cpus}

    # -- checkpoints ----------------------------------------------------
    def checkpoint(self, directory: str | os.PathLike[str]) -> Path:
        """Drain and write a checkpoint; the machine can run on afterwards."""
        self.drain()
        config = dump_machine_config(self.config)
        config["image"] = None  # RAM carries the image now
        path = write_checkpoint(directory, self.system, arch=self.arch.name, config=config)
        self.drain_resume()
        return path

    @classmethod
    def restore(
        cls,
        directory: str | os.PathLike[str],
        *,
        before_load: Callable[[Machine], None] | None = None,
        **kwargs: Any,
    ) -> Machine:
        """Build the checkpointed machine and load its state.

        ``before_load(machine)`` runs between building and loading: the place
        to add devices the config does not describe (``add_device``).
        """
        manifest = read_manifest(directory)
        machine = cls.from_data(manifest["config"], **kwargs)
        try:
            if before_load is not None:
                before_load(machine)
            # Before start-up the CPUs are idle; starting them schedules
            # the ones whose restored thread is active.
            restore_checkpoint(directory, machine.system, manifest)
        except BaseException:
            machine.close()
            raise
        return machine

    # -- teardown -------------------------------------------------------
    def close(self) -> None:
        """Release every fd, mapping and file of the machine."""
        # vCPUs and the VM go before the RAM their memory slots point into.
        for cpu in self.cpus:
            cpu.close()
        self.vm.close()
        self.system.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _with_checkpoint_dir(config: MachineConfig, directory: str) -> MachineConfig:
    """``config`` with its guest-ops device writing checkpoints to ``directory``.

    The override goes into the config, so checkpoints record it too.
    """
    devices = list(config.devices)
    for index, device in enumerate(devices):
        if isinstance(device, GuestOpsConfig):
            devices[index] = device.model_copy(update={"checkpoint_dir": directory})
            return config.model_copy(update={"devices": devices})
    raise ConfigurationError(
        "a checkpoint directory was given, but the machine has no guest-ops device "
        '(add {type = "guest-ops"} to its devices)'
    )
