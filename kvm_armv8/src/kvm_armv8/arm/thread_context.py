"""``ArmThreadContext``: what every ARM register file adds to the core's.

Arm64 KVM reaches a vCPU register by register (ONE_REG), and each host lists
its own set (``KVM_GET_REG_LIST``).  An ARM thread context therefore holds:

* :attr:`regs`: the registers it names (the subclass's ``register_names``);
* :attr:`raw`: every other register the host listed, by ONE_REG id, so that
  a checkpoint or a CPU switch carries them too (gem5 drops them);
* :attr:`invariant`: the registers KVM holds fixed (ID registers, MIDR,
  CCSIDR...), read for dumps and checks, never written back.

A context is *complete* once it holds a whole vCPU state (read from a vCPU,
or loaded from a checkpoint).  Before that, only the registers written
through :meth:`write_reg`/:meth:`write_regs` (the boot state) are the
context's own; the vCPU's reset values fill the rest at start-up.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kvmbase.sim.thread_context import ThreadContext


def _encode(value: int | bytes) -> int | str:
    return value.hex() if isinstance(value, bytes) else value


def _decode(value: int | str) -> int | bytes:
    return bytes.fromhex(value) if isinstance(value, str) else int(value)


class ArmThreadContext(ThreadContext):
    """Named registers, plus raw and invariant ones by ONE_REG id."""

    arch: ClassVar[str] = "arm"

    def __init__(self) -> None:
        super().__init__()
        #: registers the host lists and this context does not name, by id
        self.raw: dict[int, int | bytes] = {}
        #: registers KVM keeps fixed, by id (never written back)
        self.invariant: dict[int, int | bytes] = {}
        #: True once the context holds a whole vCPU state
        self.complete = False
        #: names written while the context was not complete (boot state)
        self.assigned: set[str] = set()

    def write_reg(self, name: str, value: int) -> None:
        super().write_reg(name, value)
        if not self.complete:
            self.assigned.add(name)

    def write_regs(self, values: dict[str, int]) -> None:
        super().write_regs(values)
        if not self.complete:
            self.assigned.update(values)

    def set_raw(self, reg_id: int, value: int | bytes) -> None:
        """Change a register the context holds by id only."""
        if reg_id not in self.raw:
            raise KeyError(f"register {reg_id:#x} is not among the raw registers")
        self.raw[reg_id] = value
        self.mark_dirty()

    def save_state(self) -> dict[str, Any]:
        state = super().save_state()
        state["raw"] = {f"{reg_id:#x}": _encode(v) for reg_id, v in self.raw.items()}
        state["invariant"] = {
            f"{reg_id:#x}": _encode(v) for reg_id, v in self.invariant.items()
        }
        state["complete"] = self.complete
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.raw = {int(key, 16): _decode(v) for key, v in state.get("raw", {}).items()}
        self.invariant = {
            int(key, 16): _decode(v) for key, v in state.get("invariant", {}).items()
        }
        self.complete = bool(state.get("complete", True))
        self.assigned = set() if self.complete else set(state["regs"])
        super().load_state(state)
