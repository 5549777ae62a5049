"""Guest cycle and instruction counters through ``perf_event_open(2)``.

The counters count the calling thread with the host excluded, so they see
only guest execution.  Many hosts have none (nested or paravirtualized KVM,
``perf_event_paranoid``): :func:`open_guest_counters` then says why, and the
CPU measures guest time with the host clock instead.
"""

from __future__ import annotations

import fcntl
import os
import platform
from dataclasses import dataclass

from kvmbase.abi import ffi, libc

ffi.cdef(
    """
    struct kvmbase_perf_event_attr {
        uint32_t type;
        uint32_t size;
        uint64_t config;
        uint64_t sample_period;
        uint64_t sample_type;
        uint64_t read_format;
        uint64_t flags;
        uint32_t wakeup_events;
        uint32_t bp_type;
        uint64_t config1;
        uint64_t config2;
        uint64_t branch_sample_type;
        uint64_t sample_regs_user;
        uint32_t sample_stack_user;
        int32_t clockid;
        uint64_t sample_regs_intr;
        uint32_t aux_watermark;
        uint16_t sample_max_stack;
        uint16_t reserved_2;
        uint32_t aux_sample_size;
        uint32_t reserved_3;
        uint64_t sig_data;
    };
    long syscall(long number, ...);
    """
)

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_HW_INSTRUCTIONS = 1

# Bits of perf_event_attr's flag word.
FLAG_DISABLED = 1 << 0
FLAG_PINNED = 1 << 2
FLAG_EXCLUDE_HV = 1 << 6
FLAG_EXCLUDE_HOST = 1 << 19

PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_IOC_FLAG_GROUP = 1

_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "armv7l": 364, "armv8l": 364}


class PerfCounter:
    """One open perf event counting the calling thread."""

    def __init__(
        self, event_type: int, config: int, *, flags: int, group: PerfCounter | None = None
    ) -> None:
        number = _SYS_PERF_EVENT_OPEN.get(platform.machine())
        if number is None:
            raise OSError(0, f"perf_event_open is not known on {platform.machine()}")
        attr = ffi.new("struct kvmbase_perf_event_attr *")
        attr.type = event_type
        attr.size = ffi.sizeof("struct kvmbase_perf_event_attr")
        attr.config = config
        attr.flags = flags
        group_fd = group.fd if group is not None else -1
        fd = libc.syscall(
            number,
            ffi.cast("void *", attr),
            ffi.cast("int", 0),
            ffi.cast("int", -1),
            ffi.cast("int", group_fd),
            ffi.cast("unsigned long", 0),
        )
        if fd < 0:
            code = ffi.errno
            raise OSError(code, os.strerror(code))
        self.fd: int = int(fd)

    def read(self) -> int:
        return int.from_bytes(os.read(self.fd, 8), "little")

    def start(self) -> None:
        fcntl.ioctl(self.fd, PERF_EVENT_IOC_ENABLE, PERF_IOC_FLAG_GROUP)

    def stop(self) -> None:
        fcntl.ioctl(self.fd, PERF_EVENT_IOC_DISABLE, PERF_IOC_FLAG_GROUP)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class GuestCounters:
    """The guest counters a CPU could open, or why not."""

    cycles: PerfCounter | None
    instructions: PerfCounter | None
    reason: str

    def close(self) -> None:
        for counter in (self.instructions, self.cycles):
            if counter is not None:
                counter.close()


def open_guest_counters() -> GuestCounters:
    """Open guest-only cycle and instruction counters for this thread."""
    flags = FLAG_DISABLED | FLAG_PINNED | FLAG_EXCLUDE_HV | FLAG_EXCLUDE_HOST
    try:
        cycles = PerfCounter(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, flags=flags)
    except OSError as exc:
        return GuestCounters(None, None, f"no guest cycle counter: {exc.strerror}")
    try:
        instructions = PerfCounter(
            PERF_TYPE_HARDWARE,
            PERF_COUNT_HW_INSTRUCTIONS,
            flags=FLAG_EXCLUDE_HV | FLAG_EXCLUDE_HOST,
            group=cycles,
        )
    except OSError as exc:
        return GuestCounters(cycles, None, f"no guest instruction counter: {exc.strerror}")
    return GuestCounters(cycles, instructions, "guest cycle and instruction counters")


def probe_guest_counters() -> tuple[bool, bool, str]:
    """(cycles available, instructions available, explanation) for this host."""
    counters = open_guest_counters()
    try:
        return counters.cycles is not None, counters.instructions is not None, counters.reason
    finally:
        counters.close()
