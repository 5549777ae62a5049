"""x87/SSE state between the thread context and KVM.

Where the host has XSAVE the state goes through ``KVM_GET/SET_XSAVE``:
``KVM_SET_FPU`` there writes the legacy area but leaves the XSAVE header's
XSTATE_BV alone, so the guest may still load its reset state, and the
``kvm_fpu`` ioctls do not carry MXCSR at all.  The legacy ioctls remain for
hosts without XSAVE.
"""

from __future__ import annotations

import struct
from typing import Any

from kvm_x86 import abi
from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import FpuState, X86ThreadContext
from kvmbase.abi import ffi

# The legacy (FXSAVE) region at the start of an XSAVE area.
_CONTROL = struct.Struct("<HHBxHQQI")  # FCW, FSW, abridged FTW, FOP, FIP, FDP, MXCSR
_ST_OFFSET = 32
_XMM_OFFSET = 160
_XSTATE_BV_OFFSET = 512
_X87_AND_SSE = 0b11


@register_part
class Fpu(StatePart):
    """x87/SSE state in :attr:`X86ThreadContext.fpu`."""

    name = "fpu"
    order = 40

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self.use_xsave = bool(cpu.vm.kvm.cap_xsave)
        self._xsave = ffi.new("struct kvm_xsave *")
        self._xsave_bytes = ffi.buffer(self._xsave)
        self._fpu = ffi.new("struct kvm_fpu *")

    def read_into(self, tc: X86ThreadContext) -> None:
        tc.fpu = self.read()

    def write_from(self, tc: X86ThreadContext) -> None:
        self.write(tc.fpu)

    def dump(self) -> dict[str, Any]:
        state = self.read()
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

    def read(self) -> FpuState:
        vcpu_ioctl = self.cpu.vcpu_ioctl
        if self.use_xsave:
            vcpu_ioctl(abi.KVM_GET_XSAVE, self._xsave, action="reading the XSAVE area")
            area = self._xsave_bytes
            fcw, fsw, ftwx, fop, fip, fdp, mxcsr = _CONTROL.unpack_from(area, 0)
            return FpuState(
                fpr=[bytes(area[_ST_OFFSET + 16 * i : _ST_OFFSET + 16 * i + 16]) for i in range(8)],
                fcw=fcw,
                fsw=fsw,
                ftwx=ftwx,
                last_opcode=fop,
                last_ip=fip,
                last_dp=fdp,
                xmm=[
                    bytes(area[_XMM_OFFSET + 16 * i : _XMM_OFFSET + 16 * i + 16])
                    for i in range(16)
                ],
                mxcsr=mxcsr,
            )
        fpu = self._fpu
        vcpu_ioctl(abi.KVM_GET_FPU, fpu, action="reading x87/SSE state")
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

    def write(self, state: FpuState) -> None:
        vcpu_ioctl = self.cpu.vcpu_ioctl
        if self.use_xsave:
            # Read first: the area holds more than x87/SSE (AVX and beyond).
            vcpu_ioctl(abi.KVM_GET_XSAVE, self._xsave, action="reading the XSAVE area")
            area = self._xsave_bytes
            _CONTROL.pack_into(
                area, 0, state.fcw, state.fsw, state.ftwx, state.last_opcode,
                state.last_ip, state.last_dp, state.mxcsr,
            )
            for i, row in enumerate(state.fpr):
                area[_ST_OFFSET + 16 * i : _ST_OFFSET + 16 * i + 16] = row
            for i, row in enumerate(state.xmm):
                area[_XMM_OFFSET + 16 * i : _XMM_OFFSET + 16 * i + 16] = row
            (bv,) = struct.unpack_from("<Q", area, _XSTATE_BV_OFFSET)
            struct.pack_into("<Q", area, _XSTATE_BV_OFFSET, bv | _X87_AND_SSE)
            vcpu_ioctl(abi.KVM_SET_XSAVE, self._xsave, action="writing the XSAVE area")
            return
        fpu = self._fpu
        for i, row in enumerate(state.fpr):
            ffi.memmove(fpu.fpr[i], row, 16)
        for i, row in enumerate(state.xmm):
            ffi.memmove(fpu.xmm[i], row, 16)
        fpu.fcw, fpu.fsw, fpu.ftwx = state.fcw, state.fsw, state.ftwx
        fpu.last_opcode, fpu.last_ip, fpu.last_dp = state.last_opcode, state.last_ip, state.last_dp
        fpu.mxcsr = state.mxcsr
        vcpu_ioctl(abi.KVM_SET_FPU, fpu, action="writing x87/SSE state")
