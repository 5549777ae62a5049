"""The statistics a KVM CPU keeps (gem5's set, with its descriptions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

DESCRIPTIONS: dict[str, str] = {
    "committed_insts": "Number of instructions committed",
    "num_vm_exits": "total number of KVM exits",
    "num_vm_half_entries": "number of KVM entries to finalize pending operations",
    "num_exit_signal": "exits due to signal delivery",
    "num_mmio": "number of VM exits due to memory mapped IO",
    "num_coalesced_mmio": "number of coalesced memory mapped IO requests",
    "num_io": "number of VM exits due to legacy IO",
    "num_halt": "number of VM exits due to wait for interrupt instructions",
    "num_interrupts": "number of interrupts delivered",
    "num_hypercalls": "number of hypercalls",
    "num_cycles": "number of simulated CPU cycles",
    "host_ns_in_guest": "host nanoseconds spent in KVM_RUN",
}


@dataclass(slots=True)
class CpuStats:
    """Counters updated on the exit path: plain ints, nothing else."""

    committed_insts: int = 0
    num_vm_exits: int = 0
    num_vm_half_entries: int = 0
    num_exit_signal: int = 0
    num_mmio: int = 0
    num_coalesced_mmio: int = 0
    num_io: int = 0
    num_halt: int = 0
    num_interrupts: int = 0
    num_hypercalls: int = 0
    num_cycles: int = 0
    host_ns_in_guest: int = 0

    def reset(self) -> None:
        for field in fields(self):
            setattr(self, field.name, 0)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
