"""The guest-operations page: how a guest asks the host for a service.

A guest that wants to end the simulation with a status, dump or reset the
statistics, or have a checkpoint taken writes to a 4 KiB MMIO page, by
default at ``0xFFFF0000`` (config: ``{type = "guest-ops", address = ...}``).
Every access to the page is a VM exit that the bus routes here.

Register layout (offsets from the page's address):

=======  ===========  ======  =============================================
offset   name         access  meaning
=======  ===========  ======  =============================================
0x00     MAGIC        read    ``0x53504f5453455547``: the bytes ``GUESTOPS``
0x08     VERSION      read    1, the version of this layout
0x10     EXIT         write   end the simulation; the value is the status
0x18     DUMP_STATS   r/w     write: dump the statistics, the value is a tag
                              kept with the dump; read: dumps served so far
0x20     RESET_STATS  r/w     write: zero every CPU's statistics (the value
                              is ignored); read: resets served so far
0x28     CHECKPOINT   r/w     write: take a checkpoint, the value is a tag
                              kept with it; read: checkpoints written so far
=======  ===========  ======  =============================================

The protocol: every register is 8 bytes wide.  An access is 1, 2, 4 or 8
bytes at a register's first byte.  A write is one request, and its value,
zero-extended to 64 bits, is the request's one argument; the write's VM exit
serves it (a checkpoint: see below), so nothing needs polling.  A read
returns the register's value, truncated to the access size; ``EXIT`` reads
as 0.  Any other access (another offset, the middle of a register, a write
to ``MAGIC`` or ``VERSION``) is a guest bug: it raises
:class:`~kvmbase.errors.SimulationError` and ends the run.

- **exit**: the run ends with ``RunResult.cause`` ``"guest exited with
  status N"`` and ``RunResult.code`` N; ``kvmbase run`` exits with it.
- **dump statistics**: every CPU's statistics, as :meth:`Machine.statistics`
  gives them, are recorded in :attr:`GuestOpsDevice.stats_dumps` (with the
  tick and the tag), logged at INFO level and passed to
  :attr:`GuestOpsDevice.on_stats_dump` (the command prints a table).  The
  exit that asked for the dump is counted in it.
- **reset statistics**: every CPU's statistics are zeroed, the requesting
  exit included, so what is counted afterwards is only later exits.
- **checkpoint**: a CPU cannot be drained while it is inside its own exit,
  so the write only records the request and ends the event loop;
  :meth:`Machine.run` then drains, writes the checkpoint to
  ``<checkpoint_dir>/checkpoint-<n>`` (n = 1, 2, ... per machine, carried
  in checkpoints), resumes and runs on, so its caller sees one run.  The
  count is raised before the checkpoint is written: a guest restored from
  it reads the same ``CHECKPOINT`` value as the one that asked.  A second
  request made before the first is written is the same checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kvmbase.errors import SimulationError
from kvmbase.sim.bus import Device

if TYPE_CHECKING:
    from kvmbase.sim.system import System

log = logging.getLogger(__name__)

PAGE_SIZE: Final = 0x1000
"""The device takes one page of the bus."""
DEFAULT_ADDRESS: Final = 0xFFFF0000

MAGIC: Final = 0x00
VERSION: Final = 0x08
EXIT: Final = 0x10
DUMP_STATS: Final = 0x18
RESET_STATS: Final = 0x20
CHECKPOINT: Final = 0x28

MAGIC_VALUE: Final = int.from_bytes(b"GUESTOPS", "little")
LAYOUT_VERSION: Final = 1
REGISTER_NAMES: Final = {
    MAGIC: "MAGIC",
    VERSION: "VERSION",
    EXIT: "EXIT",
    DUMP_STATS: "DUMP_STATS",
    RESET_STATS: "RESET_STATS",
    CHECKPOINT: "CHECKPOINT",
}

#: the run's cause while a checkpoint request waits for Machine.run
CHECKPOINT_CAUSE: Final = "guest requested a checkpoint"
_ACCESS_SIZES: Final = (1, 2, 4, 8)


def exit_cause(status: int) -> str:
    """The run's cause when the guest exits with ``status``."""
    return f"guest exited with status {status}"


@dataclass(frozen=True)
class StatsDump:
    """One statistics dump a guest asked for."""

    #: 1 for the first dump of the machine, then 2, ...
    number: int
    tick: int
    tag: int
    #: each CPU's statistics by CPU name, as :meth:`Machine.statistics` gives
    statistics: dict[str, dict[str, int]]


@dataclass(frozen=True)
class CheckpointRequest:
    """A checkpoint a guest asked for, waiting for :meth:`Machine.run`."""

    number: int
    tick: int
    tag: int


@dataclass(frozen=True)
class GuestCheckpoint:
    """A checkpoint written for the guest."""

    number: int
    tick: int
    tag: int
    path: Path


class GuestOpsDevice(Device):
    """Serves the guest-operations page of ``system``.

    ``checkpoint_dir`` is where requested checkpoints go; ``None`` makes a
    request an error when the machine comes to write it.
    """

    def __init__(
        self, name: str, system: System, *, checkpoint_dir: str | Path | None = None
    ) -> None:
        super().__init__(name)
        self.system = system
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        #: every statistics dump, in order (host-side records, not checkpointed)
        self.stats_dumps: list[StatsDump] = []
        #: every checkpoint written for the guest, in order
        self.checkpoints: list[GuestCheckpoint] = []
        #: called with each dump as it is taken (the command prints it)
        self.on_stats_dump: Callable[[StatsDump], None] | None = None
        #: the status of the last exit request, None before one
        self.exit_status: int | None = None
        self.dump_count = 0
        self.reset_count = 0
        self.checkpoint_count = 0
        self._pending: CheckpointRequest | None = None

    # -- the registers --------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        self._check_access("read from", offset, size)
        value = {
            MAGIC: MAGIC_VALUE,
            VERSION: LAYOUT_VERSION,
            EXIT: 0,
            DUMP_STATS: self.dump_count,
            RESET_STATS: self.reset_count,
            CHECKPOINT: self.checkpoint_count,
        }[offset]
        return value & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        self._check_access("write to", offset, size)
        if offset == EXIT:
            self.request_exit(value)
        elif offset == DUMP_STATS:
            self.dump_statistics(value)
        elif offset == RESET_STATS:
            self.reset_statistics()
        elif offset == CHECKPOINT:
            self.request_checkpoint(value)
        else:
            raise self._bad_access("write to", offset, size, "it is read-only")

    def _check_access(self, kind: str, offset: int, size: int) -> None:
        if offset not in REGISTER_NAMES:
            raise self._bad_access(kind, offset, size, "no register starts there")
        if size not in _ACCESS_SIZES:
            raise self._bad_access(kind, offset, size, "accesses are 1, 2, 4 or 8 bytes")

    def _bad_access(self, kind: str, offset: int, size: int, why: str) -> SimulationError:
        registers = ", ".join(f"{off:#04x} {name}" for off, name in REGISTER_NAMES.items())
        return SimulationError(
            f"{self.name}: {size}-byte {kind} offset {offset:#x}: {why} "
            f"(registers: {registers})"
        )

    # -- the operations -------------------------------------------------
    def request_exit(self, status: int) -> None:
        """End the run with ``status`` as its code."""
        self.exit_status = status
        log.info("%s: guest exits with status %d at tick %d", self.name, status,
                 self.system.cur_tick)
        self.system.exit_simulation(exit_cause(status), status)

    def dump_statistics(self, tag: int = 0) -> StatsDump:
        """Record (and log, and announce) every CPU's statistics now."""
        self.dump_count += 1
        dump = StatsDump(
            self.dump_count,
            self.system.cur_tick,
            tag,
            {cpu.name: cpu.statistics() for cpu in self.system.cpus},
        )
        self.stats_dumps.append(dump)
        if log.isEnabledFor(logging.INFO):
            for cpu_name, values in dump.statistics.items():
                shown = ", ".join(f"{key}={value}" for key, value in values.items())
                log.info("%s: statistics dump %d (tag %#x) at tick %d: %s: %s", self.name,
                         dump.number, tag, dump.tick, cpu_name, shown)
        if self.on_stats_dump is not None:
            self.on_stats_dump(dump)
        return dump

    def reset_statistics(self) -> None:
        """Zero every CPU's statistics."""
        self.reset_count += 1
        for cpu in self.system.cpus:
            cpu.reset_statistics()
        log.info("%s: statistics reset at tick %d", self.name, self.system.cur_tick)

    def request_checkpoint(self, tag: int = 0) -> None:
        """Ask :meth:`Machine.run` for a checkpoint once this exit is over."""
        if self._pending is None:
            self._pending = CheckpointRequest(
                self.checkpoint_count + 1, self.system.cur_tick, tag
            )
        self.system.exit_simulation(CHECKPOINT_CAUSE, 0)

    # -- what the machine does with a checkpoint request ------------------
    @property
    def checkpoint_requested(self) -> bool:
        return self._pending is not None

    def take_checkpoint_request(self) -> GuestCheckpoint | None:
        """The waiting request with its path, now counted as taken.

        None if there is none.  Without a checkpoint directory this raises
        and the request stays waiting, to be served once one is set.
        """
        request = self._pending
        if request is None:
            return None
        if self.checkpoint_dir is None:
            raise SimulationError(
                f"{self.name}: the guest asked for a checkpoint at tick {request.tick}, "
                "but no checkpoint directory is set (give the guest-ops device a "
                "checkpoint_dir, or run with --checkpoint-dir)"
            )
        self._pending = None
        self.checkpoint_count = request.number
        path = (self.checkpoint_dir / f"checkpoint-{request.number}").absolute()
        return GuestCheckpoint(request.number, request.tick, request.tag, path)

    def checkpoint_written(self, checkpoint: GuestCheckpoint) -> None:
        self.checkpoints.append(checkpoint)
        log.info("%s: checkpoint %d (tag %#x) written to %s", self.name, checkpoint.number,
                 checkpoint.tag, checkpoint.path)

    # -- checkpoints of the device itself ---------------------------------
    def serialize(self) -> dict[str, Any]:
        return {
            "dump_count": self.dump_count,
            "reset_count": self.reset_count,
            "checkpoint_count": self.checkpoint_count,
        }

    def unserialize(self, state: dict[str, Any]) -> None:
        self.dump_count = int(state["dump_count"])
        self.reset_count = int(state["reset_count"])
        self.checkpoint_count = int(state["checkpoint_count"])
