"""The run timer: forces the vCPU out of KVM when its tick budget is spent.

A POSIX timer on ``CLOCK_MONOTONIC`` signals the vCPU thread itself
(``SIGEV_THREAD_ID``) with the kick signal, which is blocked outside
``KVM_RUN`` and so can never be lost or delivered at the wrong moment.

Arming costs a system call, about as much as a tenth of a VM exit here, so
the timer is armed at an absolute deadline and left alone while the deadline
asked for is no earlier than the one set: an early expiry costs one extra
exit, after which the timer is armed again.
"""

from __future__ import annotations

import os

from kvmbase.abi import ffi, libc

ffi.cdef(
    """
    struct kvmbase_sigevent {
        uint64_t sigev_value;
        int sigev_signo;
        int sigev_notify;
        int sigev_notify_thread_id;
        int padding[11];
    };
    struct kvmbase_timespec { long tv_sec; long tv_nsec; };
    struct kvmbase_itimerspec {
        struct kvmbase_timespec it_interval;
        struct kvmbase_timespec it_value;
    };
    int timer_create(int clockid, struct kvmbase_sigevent *sevp, void **timerid);
    int timer_settime(void *timerid, int flags, const struct kvmbase_itimerspec *new_value,
                      struct kvmbase_itimerspec *old_value);
    int timer_delete(void *timerid);
    """
)

CLOCK_MONOTONIC = 1
SIGEV_THREAD_ID = 4
TIMER_ABSTIME = 1

#: Shortest run the timer grants: below about 50 us a forced exit on this
#: kind of host lands before the guest makes progress (a livelock).
MIN_RUN_NS = 50_000


class RunTimer:
    """Signals one thread at a deadline in host time."""

    def __init__(self, signo: int) -> None:
        self.signo = signo
        self._timer = ffi.new("void **")
        self._spec = ffi.new("struct kvmbase_itimerspec *")
        self._created = False
        self._armed_ns = 0  # absolute deadline set; 0 when disarmed
        self.thread_id = 0

    def bind(self, native_thread_id: int) -> None:
        """Direct the signal at ``native_thread_id`` (re-creating the timer)."""
        self.close()
        event = ffi.new("struct kvmbase_sigevent *")
        event.sigev_signo = self.signo
        event.sigev_notify = SIGEV_THREAD_ID
        event.sigev_notify_thread_id = native_thread_id
        if libc.timer_create(CLOCK_MONOTONIC, event, self._timer) != 0:
            code = ffi.errno
            raise OSError(code, f"timer_create for the run timer: {os.strerror(code)}")
        self._created = True
        self.thread_id = native_thread_id

    def arm_at(self, deadline_ns: int, now_ns: int) -> None:
        """Make sure the signal comes no later than ``deadline_ns``."""
        armed = self._armed_ns
        if now_ns < armed <= deadline_ns:
            return
        spec = self._spec
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        if libc.timer_settime(self._timer[0], TIMER_ABSTIME, spec, ffi.NULL) != 0:
            code = ffi.errno
            raise OSError(code, f"timer_settime for the run timer: {os.strerror(code)}")
        self._armed_ns = deadline_ns

    def disarm(self) -> None:
        if self._armed_ns:
            spec = self._spec
            spec.it_value.tv_sec = spec.it_value.tv_nsec = 0
            libc.timer_settime(self._timer[0], 0, spec, ffi.NULL)
            self._armed_ns = 0

    def close(self) -> None:
        if self._created:
            libc.timer_delete(self._timer[0])
            self._created = False
            self._armed_ns = 0
