"""x87, SSE and the rest of the XSAVE area between the thread context and KVM.

With XSAVE (the host has ``KVM_CAP_XSAVE`` and the CPU's ``use_xsave`` is
true, the default) the whole area goes through ``KVM_GET/SET_XSAVE`` (or
``KVM_GET_XSAVE2`` when ``KVM_CAP_XSAVE2`` reports an area over 4096
bytes): x87/SSE into :attr:`X86ThreadContext.fpu`, every further component
the host supports (AVX, AVX-512, ...) into ``tc.parts["xsave"]``
(:mod:`kvm_x86.xsave_layout` describes that form).  ``tc.fpu`` stays the
authority for x87/SSE: a write builds the area from it and from the stored
components, so changes through either reach the guest and nothing else is
lost.

Without XSAVE the legacy ``KVM_GET/SET_FPU`` carry x87/SSE only; AVX and
later state is then not carried (it stays as KVM has it, and is lost when the
state moves to another vCPU or a checkpoint).  Where the host has XSAVE,
``KVM_SET_FPU`` alone does not do: it fills the legacy region but leaves
XSTATE_BV alone, so a vCPU whose x87/SSE are marked as in their reset state
(any fresh vCPU) would load the reset state; the write marks them in use
first.  On such a host ``KVM_GET_FPU`` returns the legacy region as last
saved, which the processor skips while x87/SSE are in their reset state: a
guest that returns them to it may read back older values.  The XSAVE path
has neither problem.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from kvm_x86 import abi
from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import FpuState, X86ThreadContext
from kvm_x86.xsave_layout import (
    AVX,
    HI16_ZMM,
    LEGACY_COMPONENTS,
    OPMASK,
    REGISTER_FILES,
    XCOMP_BV_OFFSET,
    ZMM_HI256,
    XsaveLayout,
    area_size,
    decode_xfeatures,
    host_layout,
    read_xstate_bv,
    write_header,
    zero_rows,
)
from kvmbase import abi as core_abi
from kvmbase.abi import ffi, ior
from kvmbase.errors import SimulationError
from kvmbase.kvm import Kvm

log = logging.getLogger(__name__)

#: ``KVM_GET_XSAVE2``: like ``KVM_GET_XSAVE`` for areas over 4096 bytes (the
#: number encodes ``struct kvm_xsave``; the buffer is KVM_CAP_XSAVE2 bytes)
KVM_GET_XSAVE2 = ior(core_abi.KVMIO, 0xCF, "struct kvm_xsave")
core_abi.register_ioctl_names({"KVM_GET_XSAVE2": KVM_GET_XSAVE2})

# The legacy (FXSAVE) region at the start of an XSAVE area.
_CONTROL = struct.Struct("<HHBxHQQI")  # FCW, FSW, abridged FTW, FOP, FIP, FDP, MXCSR
_MXCSR_MASK = struct.Struct("<I")
_MXCSR_MASK_OFFSET = 28
_ST_OFFSET = 32
_XMM_OFFSET = 160


@register_part
class Fpu(StatePart):
    """x87/SSE in :attr:`X86ThreadContext.fpu`; with XSAVE, the other
    components in ``tc.parts["xsave"]``."""

    name = "fpu"
    order = 40

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        kvm: Kvm = cpu.vm.kvm
        self.have_xsave = bool(kvm.cap_xsave)
        self._fpu = ffi.new("struct kvm_fpu *")
        self._warned_dropped = False
        self.layout: XsaveLayout | None = None
        if self.have_xsave:
            self.layout = host_layout(kvm)
            size = area_size(kvm)
            self._area = ffi.new("char[]", size)
            self._area_bytes = ffi.buffer(self._area)
            # KVM_GET_XSAVE fills 4096 bytes; a bigger area needs XSAVE2.
            self._get_request = abi.KVM_GET_XSAVE if size <= 4096 else KVM_GET_XSAVE2

    @property
    def use_xsave(self) -> bool:
        """Whether the XSAVE ioctls carry the state: the host has them and the
        CPU's ``use_xsave`` (the machine config's ``x86.use_xsave``) is true.
        Read at every sync, so it may change between runs."""
        return self.have_xsave and self.cpu.use_xsave

    # -- thread context ⇄ KVM -------------------------------------------
    def read_into(self, tc: X86ThreadContext) -> None:
        if self.use_xsave:
            area = self.fetch_area()
            tc.fpu = legacy_state(area)
            tc.parts["xsave"] = self._components(area)
            return
        tc.fpu = self.read_legacy()
        # Not carried on this path: a stale copy must not reach a checkpoint.
        tc.parts.pop("xsave", None)

    def write_from(self, tc: X86ThreadContext) -> None:
        if self.use_xsave:
            self.write_area(tc.fpu, tc.parts.get("xsave"))
            return
        self.write_legacy(tc.fpu)
        if not self._warned_dropped and _has_extended_data(tc.parts.get("xsave")):
            self._warned_dropped = True
            log.warning(
                "%s: use_xsave is off: the AVX and later XSAVE state in the thread "
                "context is not written to the vCPU",
                self.cpu.name,
            )

    def dump(self) -> dict[str, Any]:
        state = legacy_state(self.fetch_area()) if self.use_xsave else self.read_legacy()
        return legacy_dump(state)

    # -- the XSAVE area -------------------------------------------------
    def fetch_area(self) -> Any:
        """``KVM_GET_XSAVE(2)`` into the part's buffer; returns the buffer."""
        if not self.have_xsave:
            raise SimulationError(f"{self.cpu.name}: the host's KVM lacks KVM_CAP_XSAVE")
        self.cpu.vcpu_ioctl(self._get_request, self._area, action="reading the XSAVE area")
        return self._area_bytes

    def write_area(self, state: FpuState, data: dict[str, Any] | None) -> None:
        """Build the area from ``state`` and ``data`` (``tc.parts["xsave"]``)
        and ``KVM_SET_XSAVE`` it."""
        assert self.layout is not None
        components = self.layout.components
        area = self._area_bytes
        if data is None or any(c.key not in data for c in components):
            # Components the thread context does not hold stay as KVM has them.
            self.fetch_area()
            xstate_bv = read_xstate_bv(area)
        else:
            xstate_bv = int(data.get("xstate_bv", 0))
        pack_legacy(area, state)
        # tc.fpu is the authority for x87/SSE: mark them in use, or the guest
        # would load their reset state instead.
        xstate_bv |= LEGACY_COMPONENTS
        if data is not None:
            xstate_bv |= self._pack_components(area, data)
        write_header(area, xstate_bv & (self.layout.supported | LEGACY_COMPONENTS))
        self.cpu.vcpu_ioctl(
            abi.KVM_SET_XSAVE,
            self._area,
            action=f"writing the XSAVE area (XSTATE_BV {xstate_bv:#x}: "
            f"{', '.join(decode_xfeatures(xstate_bv))})",
        )

    def _components(self, area: Any) -> dict[str, Any]:
        assert self.layout is not None
        data: dict[str, Any] = {"xstate_bv": read_xstate_bv(area)}
        for component in self.layout.components:
            data[component.key] = component.read_rows(area)
        return data

    def _pack_components(self, area: Any, data: dict[str, Any]) -> int:
        """Put the stored components into ``area``; the XSTATE_BV bits of
        those holding anything but zeros (their reset state)."""
        assert self.layout is not None
        in_use = 0
        known = {"xstate_bv"}
        for component in self.layout.components:
            known.add(component.key)
            rows = data.get(component.key)
            if rows is None:
                continue
            component.write_rows(area, rows)
            if any(int(row, 16) for row in rows):
                in_use |= component.mask
        for key in data.keys() - known:
            rows = data[key]
            if isinstance(rows, list) and any(int(row, 16) for row in rows):
                raise SimulationError(
                    f"{self.cpu.name}: the thread context holds XSAVE state {key!r} "
                    f"that this host's KVM does not support "
                    f"(it supports {', '.join(decode_xfeatures(self.layout.supported))})"
                )
        return in_use

    # -- the legacy ioctls ----------------------------------------------
    def read_legacy(self) -> FpuState:
        fpu = self._fpu
        self.cpu.vcpu_ioctl(abi.KVM_GET_FPU, fpu, action="reading x87/SSE state")
        return FpuState(
            fpr=[bytes(ffi.buffer(fpu.fpr[i])) for i in range(8)],
            fcw=fpu.fcw,
            fsw=fpu.fsw,
            ftwx=fpu.ftwx,
            last_opcode=fpu.last_opcode,
            last_ip=fpu.last_ip,
            last_dp=fpu.last_dp,
            xmm=[bytes(ffi.buffer(fpu.xmm[i])) for i in range(16)],
            mxcsr=fpu.mxcsr,
        )

    def write_legacy(self, state: FpuState) -> None:
        if self.have_xsave:
            self._mark_legacy_in_use()
        fpu = self._fpu
        for i, row in enumerate(state.fpr):
            ffi.memmove(fpu.fpr[i], row, 16)
        for i, row in enumerate(state.xmm):
            ffi.memmove(fpu.xmm[i], row, 16)
        fpu.fcw, fpu.fsw, fpu.ftwx = state.fcw, state.fsw, state.ftwx
        fpu.last_opcode, fpu.last_ip, fpu.last_dp = state.last_opcode, state.last_ip, state.last_dp
        fpu.mxcsr = state.mxcsr
        self.cpu.vcpu_ioctl(abi.KVM_SET_FPU, fpu, action="writing x87/SSE state")

    def _mark_legacy_in_use(self) -> None:
        """Where the host has XSAVE, ``KVM_SET_FPU`` only fills the legacy
        region: if XSTATE_BV says x87 or SSE is in its reset state (a fresh
        vCPU, or a guest that left them so), the guest loads the reset state
        instead.  Mark both in use first (the data itself is then overwritten
        by ``KVM_SET_FPU``); the other components are written back unchanged."""
        area = self.fetch_area()
        xstate_bv = read_xstate_bv(area)
        if xstate_bv & LEGACY_COMPONENTS != LEGACY_COMPONENTS:
            write_header(area, xstate_bv | LEGACY_COMPONENTS)
            self.cpu.vcpu_ioctl(
                abi.KVM_SET_XSAVE, self._area, action="marking x87/SSE in use in XSTATE_BV"
            )


@register_part
class Xsave(StatePart):
    """The ``xsave`` dump section: the whole area as KVM holds it.

    Syncing is the FPU part's job (one ``KVM_GET/SET_XSAVE`` for both), so
    this part moves nothing; its thread-context state, ``tc.parts["xsave"]``,
    is written by the FPU part.
    """

    name = "xsave"
    order = 41

    @classmethod
    def supported(cls, kvm: Kvm) -> tuple[bool, str]:
        if not kvm.cap_xsave:
            return False, "the host's KVM lacks KVM_CAP_XSAVE"
        return True, ""

    def read_into(self, tc: X86ThreadContext) -> None:
        """Done by the FPU part."""

    def write_from(self, tc: X86ThreadContext) -> None:
        """Done by the FPU part."""

    def dump(self) -> dict[str, Any]:
        fpu = self.cpu.part("fpu")
        assert isinstance(fpu, Fpu) and fpu.layout is not None
        area = fpu.fetch_area()
        return xsave_dump(area, fpu.layout)


# -- the legacy region ----------------------------------------------------
def legacy_state(area: Any) -> FpuState:
    """x87/SSE from the legacy region of an XSAVE area."""
    fcw, fsw, ftwx, fop, fip, fdp, mxcsr = _CONTROL.unpack_from(area, 0)
    return FpuState(
        fpr=[bytes(area[_ST_OFFSET + 16 * i : _ST_OFFSET + 16 * i + 16]) for i in range(8)],
        fcw=fcw,
        fsw=fsw,
        ftwx=ftwx,
        last_opcode=fop,
        last_ip=fip,
        last_dp=fdp,
        xmm=[bytes(area[_XMM_OFFSET + 16 * i : _XMM_OFFSET + 16 * i + 16]) for i in range(16)],
        mxcsr=mxcsr,
    )


def pack_legacy(area: Any, state: FpuState) -> None:
    """Write x87/SSE into the legacy region (MXCSR_MASK stays as it is)."""
    _CONTROL.pack_into(
        area, 0, state.fcw, state.fsw, state.ftwx, state.last_opcode,
        state.last_ip, state.last_dp, state.mxcsr,
    )  # fmt: skip
    for i, row in enumerate(state.fpr):
        area[_ST_OFFSET + 16 * i : _ST_OFFSET + 16 * i + 16] = row
    for i, row in enumerate(state.xmm):
        area[_XMM_OFFSET + 16 * i : _XMM_OFFSET + 16 * i + 16] = row


def legacy_dump(state: FpuState) -> dict[str, Any]:
    """The ``fpu`` dump section."""
    return {
        "fcw": state.fcw,
        "fsw": state.fsw,
        "ftwx": state.ftwx,
        "last_opcode": state.last_opcode,
        "last_ip": state.last_ip,
        "last_dp": state.last_dp,
        "mxcsr": state.mxcsr,
        "st": [row[:10].hex() for row in state.fpr],
        "xmm": [row.hex() for row in state.xmm],
    }


def xsave_dump(area: Any, layout: XsaveLayout) -> dict[str, Any]:
    """The ``xsave`` dump section: header, x87/SSE as in ``fpu``, and each
    component the host supports, with whole YMM/ZMM registers composed."""
    xstate_bv = read_xstate_bv(area)
    legacy = legacy_state(area)
    result: dict[str, Any] = {
        "size": len(area),
        "xstate_bv": f"{xstate_bv:#x}",
        "xstate_bv_components": decode_xfeatures(xstate_bv),
        "xcomp_bv": f"{struct.unpack_from('<Q', area, XCOMP_BV_OFFSET)[0]:#x}",
        "x87_sse": {
            **legacy_dump(legacy),
            "mxcsr_mask": f"{_MXCSR_MASK.unpack_from(area, _MXCSR_MASK_OFFSET)[0]:#x}",
        },
    }
    rows: dict[int, list[bytes]] = {}
    for component in layout.components:
        component_rows = [bytes.fromhex(row) for row in component.read_rows(area)]
        rows[component.number] = component_rows
        section: dict[str, Any] = {
            "in_use": bool(xstate_bv & component.mask),
            "offset": component.offset,
            "size": component.size,
        }
        if component.number == OPMASK:
            section["k"] = [f"{int.from_bytes(row, 'little'):#018x}" for row in component_rows]
        else:
            section[component.key] = [row.hex() for row in component_rows]
        result[component.name] = section
    if AVX in rows:
        ymm = [legacy.xmm[i] + rows[AVX][i] for i in range(16)]
        result["avx"]["ymm"] = [row.hex() for row in ymm]
        if ZMM_HI256 in rows:
            result["zmm_hi256"]["zmm"] = [(ymm[i] + rows[ZMM_HI256][i]).hex() for i in range(16)]
    if HI16_ZMM in rows:
        result["hi16_zmm"]["zmm"] = {
            f"zmm{16 + i}": row.hex() for i, row in enumerate(rows[HI16_ZMM])
        }
    return result


def _has_extended_data(data: dict[str, Any] | None) -> bool:
    if not data:
        return False
    return any(
        isinstance(rows, list) and any(int(row, 16) for row in rows) for rows in data.values()
    )


# -- the thread-context view of vector registers ------------------------------
def _rows(tc: X86ThreadContext, number: int) -> list[str] | None:
    rows: list[str] | None = tc.parts.get("xsave", {}).get(REGISTER_FILES[number][0])
    return rows


def _row(tc: X86ThreadContext, number: int, index: int) -> bytes:
    rows = _rows(tc, number)
    if rows is None:
        return bytes.fromhex(zero_rows(number)[index])
    return bytes.fromhex(rows[index])


def _set_row(tc: X86ThreadContext, number: int, index: int, value: bytes) -> None:
    data = tc.parts.setdefault("xsave", {})
    rows = data.setdefault(REGISTER_FILES[number][0], zero_rows(number))
    rows[index] = value.hex()


def _set_xmm(tc: X86ThreadContext, index: int, value: bytes) -> None:
    xmm = list(tc.fpu.xmm)
    xmm[index] = value
    tc.fpu.xmm = xmm


def read_ymm(tc: X86ThreadContext, index: int) -> bytes:
    """YMM ``index`` (32 bytes, memory order) from the thread context: the
    low half is ``tc.fpu.xmm[index]``; the upper half reads as zeros if the
    context holds none."""
    return tc.fpu.xmm[index] + _row(tc, AVX, index)


def write_ymm(tc: X86ThreadContext, index: int, value: bytes) -> None:
    """Set YMM ``index`` in the thread context; reaches the vCPU on next run."""
    if len(value) != 32:
        raise ValueError(f"a YMM register is 32 bytes, got {len(value)}")
    tc.mark_dirty()  # first: refused if the context is stale
    _set_xmm(tc, index, value[:16])
    _set_row(tc, AVX, index, value[16:])


def read_zmm(tc: X86ThreadContext, index: int) -> bytes:
    """ZMM ``index`` (0-31, 64 bytes, memory order) from the thread context."""
    if index >= 16:
        return _row(tc, HI16_ZMM, index - 16)
    return read_ymm(tc, index) + _row(tc, ZMM_HI256, index)


def write_zmm(tc: X86ThreadContext, index: int, value: bytes) -> None:
    """Set ZMM ``index`` (0-31) in the thread context."""
    if len(value) != 64:
        raise ValueError(f"a ZMM register is 64 bytes, got {len(value)}")
    if index >= 16:
        tc.mark_dirty()
        _set_row(tc, HI16_ZMM, index - 16, value)
        return
    write_ymm(tc, index, value[:32])
    _set_row(tc, ZMM_HI256, index, value[32:])


def read_opmask(tc: X86ThreadContext, index: int) -> int:
    """Opmask register k``index`` from the thread context."""
    return int.from_bytes(_row(tc, OPMASK, index), "little")


def write_opmask(tc: X86ThreadContext, index: int, value: int) -> None:
    """Set opmask register k``index`` in the thread context."""
    tc.mark_dirty()
    _set_row(tc, OPMASK, index, value.to_bytes(8, "little"))
