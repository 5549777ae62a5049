"""The guest's time-stamp counter: its frequency, and its value without an ioctl.

Guest time on x86 is the guest TSC.  KVM derives it from the host's TSC at
the vCPU's frequency (``KVM_GET_TSC_KHZ``) plus an offset, and it runs in
wall time: it does not stop while the simulator serves an exit.  So once
its value is known at one host instant (an *anchor*: every read of the MSRs
sets one), its value at any later instant follows from the host clock,
``anchor + elapsed ns * kHz / 10**6``.  :meth:`TscPart.estimate` computes
that; no exit pays a state ioctl for it (one costs as much as an exit here).

The TSC never runs backwards for the guest:

* across exits: KVM's counter is monotonic, and kvm_x86 writes the TSC MSR
  only from a thread context read after the last exit (a stale context is
  refused by the base CPU), so a write never goes below what the guest saw;
* across checkpoints and CPU switches: the TSC MSR is part of
  ``tc.parts["msrs"]``; the vCPU that takes the thread over, in this VM or a
  fresh one, gets the value read when the old one stopped, and KVM moves its
  offset so that the guest carries on from there.

The MSR part writes the TSC only when the context holds a value this vCPU
did not read itself (a restore, a switch, a user's edit), so the TSC of a
running thread is never paused or moved by a mere register write.  After
each such write :meth:`TscPart.check_write` reads it back (one ioctl, off
the exit path): KVM may keep its own offset for a value within a second of
what it expects (its vCPU synchronisation), and some hosts ignore the write
altogether.  PVM, this project's host, is one: guest code at CPL3 runs
natively with no TSC offsetting, so the guest TSC is the host's.  There the
guest TSC still never falls across a checkpoint restored on the same host,
but it jumps forward by the wall time in between; restored on a host whose
TSC is behind the checkpoint's, it would fall, and that is a warning.

The frequency the thread runs at is ``tc.parts["tsc"]``:
``{"frequency_khz": int, "requested": bool}``.  :func:`setup_tsc` puts a
configured one there (``requested``); otherwise the first read records the
host's (so a checkpoint says at what rate its TSC ran).  Writing the context
applies it with ``KVM_SET_TSC_KHZ`` where the host has
``KVM_CAP_TSC_CONTROL``.  Without it, a requested frequency further than
:data:`TOLERANCE_PPM` from the host's is a config error naming
``x86.tsc_frequency``; a recorded one (a checkpoint from another host) is a
warning, once.

This module registers the ``tsc`` state part when imported; the MSR part
imports it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import X86ThreadContext
from kvmbase import abi
from kvmbase.abi import io
from kvmbase.config import ConfigError, ConfigIssue
from kvmbase.errors import KvmIoctlError
from kvmbase.kvm import Kvm
from kvmbase.vm import KvmVM

KVM_SET_TSC_KHZ: Final = io(abi.KVMIO, 0xA2)
KVM_GET_TSC_KHZ: Final = io(abi.KVMIO, 0xA3)

abi.register_ioctl_names({"KVM_SET_TSC_KHZ": KVM_SET_TSC_KHZ, "KVM_GET_TSC_KHZ": KVM_GET_TSC_KHZ})

#: how far a requested frequency may be from the host's and still count as
#: the host's: KVM's own default (``tsc_tolerance_ppm``), below which it
#: does not scale the TSC either
TOLERANCE_PPM: Final = 250
#: the config field a frequency request comes from, for error messages
CONFIG_FIELD: Final = ("x86", "tsc_frequency")
MSR_TSC: Final = 0x10

log = logging.getLogger(__name__)
_clock_gettime_ns = time.clock_gettime_ns
_RAW_CLOCK = time.CLOCK_MONOTONIC_RAW


def host_clock_ns() -> int:
    """The host clock TSC estimates run on (not slewed by NTP, like the TSC)."""
    return _clock_gettime_ns(_RAW_CLOCK)


def frequencies_match(khz: int, host_khz: int) -> bool:
    """Whether ``khz`` is within :data:`TOLERANCE_PPM` of ``host_khz``."""
    return abs(khz - host_khz) * 1_000_000 <= TOLERANCE_PPM * host_khz


def can_set_frequency(kvm: Kvm) -> bool:
    """Whether this host's KVM sets guest TSC frequencies (``TSC_CONTROL``)."""
    return kvm.check_extension(abi.KVM_CAP_TSC_CONTROL) != 0


def vm_tsc_khz(vm: KvmVM) -> int | None:
    """The VM's default TSC frequency in kHz; None where KVM does not say
    before a vCPU exists (``KVM_GET_TSC_KHZ`` on the VM is Linux 5.19+)."""
    if vm.kvm.check_extension(abi.KVM_CAP_GET_TSC_KHZ) == 0:
        return None
    try:
        return vm.ioctl(KVM_GET_TSC_KHZ, action="reading the TSC frequency")
    except KvmIoctlError:
        return None


def _unsettable(khz: int, host_khz: int) -> ConfigError:
    return ConfigError(
        [
            ConfigIssue(
                CONFIG_FIELD,
                f"this host's KVM cannot set the guest TSC frequency (no "
                f"KVM_CAP_TSC_CONTROL); its TSC runs at {host_khz} kHz: leave the field "
                f"unset or give that (within {TOLERANCE_PPM} ppm)",
                f"{khz} kHz",
            )
        ]
    )


def setup_tsc(vm: KvmVM, tc: X86ThreadContext, frequency_hz: int | None) -> None:
    """Machine set-up: check ``x86.tsc_frequency`` and give it to the thread.

    Raises :class:`ConfigError` at once where the host can neither set the
    frequency nor already runs at it.  ``None`` leaves the host's frequency.
    """
    if frequency_hz is None:
        return
    khz = max(1, round(frequency_hz / 1000))
    if not can_set_frequency(vm.kvm):
        host_khz = vm_tsc_khz(vm)
        if host_khz is not None and not frequencies_match(khz, host_khz):
            raise _unsettable(khz, host_khz)
    tc.parts["tsc"] = {"frequency_khz": khz, "requested": True}


@register_part
class TscPart(StatePart):
    """The TSC frequency of the thread, and host-side estimates of the TSC.

    The TSC value itself is an MSR (the ``msrs`` part) and is synced there.
    """

    name = "tsc"
    # Before the MSRs: a frequency change rescales the TSC, the MSR write
    # then puts it where the thread context says.
    order = 1

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self._khz: int | None = None
        self._anchor_tsc = 0
        self._anchor_ns = 0
        self._anchored = False
        self._last_estimate = 0
        self._warned = False
        self._reported_writes: set[str] = set()
        #: TSC reads :meth:`estimate` needed (each an ioctl); the MSR syncs
        #: anchor it otherwise
        self.anchor_reads = 0
        #: after the last TSC write: the value read back minus the one written
        self.last_write_gap: int | None = None

    @classmethod
    def supported(cls, kvm: Kvm) -> tuple[bool, str]:
        if kvm.check_extension(abi.KVM_CAP_GET_TSC_KHZ) == 0:
            return False, "the host's KVM lacks GET_TSC_KHZ (the TSC frequency is unknown)"
        return True, ""

    # -- frequency -------------------------------------------------------
    @property
    def frequency_khz(self) -> int:
        """The vCPU's TSC frequency in kHz (``KVM_GET_TSC_KHZ``, asked once)."""
        if self._khz is None:
            self._khz = self.cpu.vcpu_ioctl(KVM_GET_TSC_KHZ, action="reading the TSC frequency")
        return self._khz

    def read_into(self, tc: X86ThreadContext) -> None:
        if "tsc" not in tc.parts:
            tc.parts["tsc"] = {"frequency_khz": self.frequency_khz, "requested": False}

    def write_from(self, tc: X86ThreadContext) -> None:
        state = tc.parts.get("tsc")
        if state is None:
            return
        want = int(state["frequency_khz"])
        have = self.frequency_khz
        if want == have:
            return
        requested = bool(state.get("requested"))
        if can_set_frequency(self.cpu.vm.kvm):
            try:
                self.cpu.vcpu_ioctl(
                    KVM_SET_TSC_KHZ, want, action=f"setting the TSC frequency to {want} kHz"
                )
            except KvmIoctlError as exc:
                if not requested:
                    raise
                raise ConfigError(
                    [ConfigIssue(CONFIG_FIELD, f"KVM refused it: {exc}", f"{want} kHz")]
                ) from exc
            self._khz = None
            self.forget_anchor()
        elif frequencies_match(want, have):
            return
        elif requested:
            raise _unsettable(want, have)
        elif not self._warned:
            self._warned = True
            log.warning(
                "%s: the thread's TSC ran at %d kHz; this host's KVM runs it at %d kHz and "
                "cannot change that (no KVM_CAP_TSC_CONTROL), so guest time now runs at "
                "another rate",
                self.cpu.name,
                want,
                have,
            )

    # -- value -------------------------------------------------------------
    def anchor(self, tsc: int, host_ns: int) -> None:
        """The guest TSC was ``tsc`` at host clock ``host_ns`` (:func:`host_clock_ns`)."""
        self._anchor_tsc = tsc
        self._anchor_ns = host_ns
        self._anchored = True

    def check_write(self, written: int) -> None:
        """The TSC MSR was written: read it back, anchor, and say once if KVM
        kept a value other than the one written (see the module's notes)."""
        before = host_clock_ns()
        value = self._read_tsc()
        after = host_clock_ns()
        self.forget_anchor()
        self.anchor(value, (before + after) // 2)
        gap = value - written
        self.last_write_gap = gap
        second = self.frequency_khz * 1000
        if gap < 0:
            kind = "behind"
            level = logging.WARNING
            detail = "the guest's time ran backwards"
        elif gap > second:
            kind = "ahead"
            level = logging.INFO
            detail = "the guest's time jumped forward"
        else:
            return
        if kind not in self._reported_writes:
            self._reported_writes.add(kind)
            log.log(
                level,
                "%s: KVM did not move the guest TSC to the thread's value (wrote %#x, reads "
                "%#x, %.3f s %s): %s; this host's KVM does not honour TSC writes",
                self.cpu.name,
                written,
                value,
                abs(gap) / second,
                kind,
                detail,
            )

    def forget_anchor(self) -> None:
        """The TSC was written: the next estimate reads it first."""
        self._anchored = False
        self._last_estimate = 0

    def estimate(self, host_ns: int | None = None) -> int:
        """The guest TSC at host clock ``host_ns`` (now by default).

        From the last anchor and the frequency; an ioctl only when no
        anchor is valid (before the first read, after a write).  Never
        less than an earlier estimate of the same anchor.
        """
        if not self._anchored:
            self._read_anchor()
        now = host_clock_ns() if host_ns is None else host_ns
        value = self._anchor_tsc + (now - self._anchor_ns) * self.frequency_khz // 1_000_000
        if value < self._last_estimate:
            value = self._last_estimate
        self._last_estimate = value
        return value

    def _read_tsc(self) -> int:
        # The MSR part imports this module: import it here, once both exist.
        from kvm_x86.parts.msrs import Msrs

        msrs = self.cpu.part("msrs")
        assert isinstance(msrs, Msrs)
        return msrs.read_msr(MSR_TSC)

    def _read_anchor(self) -> None:
        before = host_clock_ns()
        value = self._read_tsc()
        after = host_clock_ns()
        self.anchor_reads += 1
        self.anchor(value, (before + after) // 2)

    def cycles_to_ticks(self, cycles: int) -> int:
        """Simulated ticks (1 ps) that ``cycles`` TSC cycles take."""
        return cycles * 1_000_000_000 // self.frequency_khz

    def ticks_to_cycles(self, ticks: int) -> int:
        """TSC cycles in ``ticks`` simulated ticks (1 ps)."""
        return ticks * self.frequency_khz // 1_000_000_000

    def dump(self) -> dict[str, Any]:
        """The frequency, whether KVM can change it, and the TSC now."""
        return {
            "frequency_khz": self.frequency_khz,
            "frequency_settable": can_set_frequency(self.cpu.vm.kvm),
            "tsc": self._read_tsc(),
        }
