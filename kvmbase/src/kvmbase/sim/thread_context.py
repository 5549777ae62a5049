"""The thread context: the architectural state the simulator owns."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any, ClassVar


class ThreadStatus(enum.Enum):
    """Run status of a thread, as gem5 names it."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    HALTED = "halted"


class ThreadContext:
    """Base of every architecture's register file.

    Scalar registers live in :attr:`regs` under the names the architecture
    lists in :attr:`register_names`; subclasses add structured state (segments,
    vector registers) and extend :meth:`save_state`/:meth:`load_state`.

    Writes through :meth:`write_reg` (or by anyone who then calls
    :meth:`mark_dirty`) tell the owning CPU that its vCPU is stale.  The CPU
    itself fills the context through :attr:`regs` directly, without that.
    """

    arch: ClassVar[str] = "none"
    register_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.regs: dict[str, int] = dict.fromkeys(self.register_names, 0)
        self.status = ThreadStatus.HALTED
        self._dirty_listener: Callable[[], None] | None = None
        self._status_listener: Callable[[ThreadStatus, ThreadStatus], None] | None = None

    # -- ownership ------------------------------------------------------
    def attach(
        self,
        on_dirty: Callable[[], None],
        on_status: Callable[[ThreadStatus, ThreadStatus], None],
    ) -> None:
        """Called by the CPU that runs this thread."""
        self._dirty_listener = on_dirty
        self._status_listener = on_status

    def detach(self) -> None:
        self._dirty_listener = None
        self._status_listener = None

    def mark_dirty(self) -> None:
        if self._dirty_listener is not None:
            self._dirty_listener()

    # -- status ---------------------------------------------------------
    def _set_status(self, status: ThreadStatus) -> None:
        old, self.status = self.status, status
        if old is not status and self._status_listener is not None:
            self._status_listener(old, status)

    def activate(self) -> None:
        self._set_status(ThreadStatus.ACTIVE)

    def suspend(self) -> None:
        self._set_status(ThreadStatus.SUSPENDED)

    def halt(self) -> None:
        self._set_status(ThreadStatus.HALTED)

    # -- registers ------------------------------------------------------
    def read_reg(self, name: str) -> int:
        try:
            return self.regs[name]
        except KeyError:
            raise KeyError(self._unknown(name)) from None

    def write_reg(self, name: str, value: int) -> None:
        if name not in self.regs:
            raise KeyError(self._unknown(name))
        self.regs[name] = value
        self.mark_dirty()

    def write_regs(self, values: dict[str, int]) -> None:
        for name in values:
            if name not in self.regs:
                raise KeyError(self._unknown(name))
        self.regs.update(values)
        self.mark_dirty()

    def _unknown(self, name: str) -> str:
        return f"{self.arch} has no register {name!r}; it has {', '.join(self.regs)}"

    @property
    def pc(self) -> int:
        """The program counter, whatever the architecture calls it."""
        raise NotImplementedError

    # -- checkpoints ----------------------------------------------------
    def save_state(self) -> dict[str, Any]:
        """The whole context as JSON types."""
        return {"arch": self.arch, "status": self.status.value, "regs": dict(self.regs)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`save_state` output; marks the context dirty."""
        if state.get("arch") != self.arch:
            raise ValueError(
                f"state is of architecture {state.get('arch')!r}, this context is {self.arch!r}"
            )
        unknown = set(state["regs"]) - set(self.regs)
        if unknown:
            raise ValueError(f"unknown {self.arch} registers in state: {sorted(unknown)}")
        self.regs.update(state["regs"])
        self.status = ThreadStatus(state["status"])
        self.mark_dirty()

    def copy_from(self, other: ThreadContext) -> None:
        """Take ``other``'s whole state (CPU switching)."""
        self.load_state(other.save_state())


def changed_registers(
    before: dict[str, int], after: dict[str, int], names: Iterable[str] | None = None
) -> dict[str, tuple[int, int]]:
    """Registers whose values differ, with (before, after)."""
    keys = names if names is not None else before.keys()
    return {k: (before[k], after[k]) for k in keys if before[k] != after[k]}
