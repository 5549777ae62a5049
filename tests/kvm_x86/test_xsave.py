"""Full FPU and vector state: XCR0, the XSAVE area (AVX, AVX-512), the legacy path.

The guests (guests/avx.S, guests/avx512.S) do their vector work at CPL3,
where this host runs them natively; the host enables the components for
them (XCR0 through the ``xcrs`` part, CR4.OSXSAVE through the context's
cr4) because ``xsetbv`` fails in the CPL0 emulator here.  Every expected
value comes from a Python model of the guest.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import PortRecorder
from x86_machines import LOAD_ADDRESS, build_guest, machine_config, machine_from

from kvm_x86.parts.fpu import (
    read_opmask,
    read_ymm,
    read_zmm,
    write_opmask,
    write_ymm,
    write_zmm,
)
from kvm_x86.parts.xcrs import set_xcr0, xcr0
from kvm_x86.thread_context import X86ThreadContext
from kvm_x86.xsave_layout import XsaveLayout, decode_xfeatures, host_layout
from kvmbase import Machine
from kvmbase.cpu import RunState
from kvmbase.errors import KvmIoctlError, SimulationError
from kvmbase.kvm import Kvm

pytestmark = pytest.mark.kvm

PHASE_PORT, RESULT_PORT = 0xE0, 0xE1
SEEN, FINAL, SEEN_K = 0x100800, 0x100A00, 0x101000
XCR0_AVX = 0b111  # x87 | SSE | AVX
XCR0_AVX512 = 0xE7  # ... | opmask | ZMM_Hi256 | Hi16_ZMM
CR4_OSXSAVE = 1 << 18
M64 = (1 << 64) - 1

# avx.S constants (see its header)
ADDEND = (0x3FB999999999999A, 0xC00921FB54442D18, 0x4005BF0A8B145769, 0x3FE0000000000001)
SCALE = (0x3FF8000000000000, 0xBFE0000000000000, 0x400921FB54442D18, 0x3FF0000000000001)

Ymm = tuple[int, ...]  # four qwords, lane 0 first


# -- the models ---------------------------------------------------------------
def as_double(bits: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


def as_bits(value: float) -> int:
    bits: int = struct.unpack("<Q", struct.pack("<d", value))[0]
    return bits


def add_pd(a: Ymm, b: Ymm) -> Ymm:
    """vaddpd: Python's float addition is IEEE double, round to nearest,
    as MXCSR's reset state asks."""
    return tuple(as_bits(as_double(x) + as_double(y)) for x, y in zip(a, b, strict=True))


def mul_pd(a: Ymm, b: Ymm) -> Ymm:
    return tuple(as_bits(as_double(x) * as_double(y)) for x, y in zip(a, b, strict=True))


def avx_initial() -> list[Ymm]:
    """avx.S's `initial` table."""
    return [
        tuple(0x3FF0000000000000 + (4 * n + lane) * 0x000123456789ABCD for lane in range(4))
        for n in range(16)
    ]


def avx_phase1(regs: list[Ymm]) -> list[Ymm]:
    out = []
    for n, value in enumerate(regs):
        summed = add_pd(value, ADDEND)
        flips = [((4 * n + lane) & 1) << 63 | (4 * n + lane + 1) for lane in range(4)]
        out.append(tuple(x ^ f for x, f in zip(summed, flips, strict=True)))
    return out


def avx_phase2(regs: list[Ymm]) -> list[Ymm]:
    out = list(regs)
    for n in range(16):
        value = add_pd(out[n], out[(n + 1) % 16])
        if n & 1:
            value = (value[2], value[3], value[0], value[1])
        out[n] = mul_pd(value, SCALE)
    return out


def checksum(regs: list[Ymm]) -> int:
    result = 0
    for value in regs:
        for qword in value:
            result ^= qword
    return result


def to_bytes(value: tuple[int, ...]) -> bytes:
    return b"".join(q.to_bytes(8, "little") for q in value)


def from_bytes(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8))


def host_values(count: int, qwords: int, seed: int) -> list[tuple[int, ...]]:
    """Finite, normal doubles (exponent 0x3F0-0x40F), all distinct."""
    values = []
    for n in range(count):
        lanes = []
        for lane in range(qwords):
            mix = (0x9E3779B97F4A7C15 * (seed + n * qwords + lane + 1)) & M64
            lanes.append((0x3F0 + (mix >> 60)) << 52 | (mix & ((1 << 52) - 1)))
        values.append(tuple(lanes))
    return values


# -- fixtures -----------------------------------------------------------------
@pytest.fixture(scope="module")
def layout() -> Iterator[XsaveLayout]:
    """The host's XSAVE layout; skips unless the host offers XSAVE with AVX."""
    with Kvm() as kvm:
        capabilities = {"KVM_CAP_XSAVE": kvm.cap_xsave, "KVM_CAP_XCRS": kvm.cap_xcrs}
        missing = [name for name, present in capabilities.items() if not present]
        if missing:
            pytest.skip(f"host lacks: {', '.join(missing)}")
        found = host_layout(kvm)
    if not found.supported & 0b100:
        pytest.skip("host lacks: AVX in the XCR0 bits KVM supports (CPUID leaf 0xD)")
    if "avx" not in cpu_flags():
        pytest.skip("host lacks: the avx CPU flag")
    yield found


def cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


@pytest.fixture(scope="module")
def xsave_guests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("xsave-guests")
    builds = {
        "avx": ("avx.S", {"RING": 3, "LOAD": 1}),
        "avx-from-host": ("avx.S", {"RING": 3, "LOAD": 0}),
        "avx512": ("avx512.S", {"RING": 3}),
    }
    return {
        name: build_guest(source, out / f"{name}.bin", symbols)
        for name, (source, symbols) in builds.items()
    }


def attach_ports(
    machine: Machine, stop_at_phase: bool = False
) -> tuple[PortRecorder, PortRecorder]:
    phase = PortRecorder("phase", stop_after=1 if stop_at_phase else None)
    phase.on_stop = lambda: machine.stop("phase 1 done")
    result = PortRecorder("result")
    machine.add_device(phase, machine.port_address(PHASE_PORT), 1)
    machine.add_device(result, machine.port_address(RESULT_PORT), 1)
    return phase, result


def attach_ports_only(machine: Machine) -> None:
    attach_ports(machine)


def new_machine(
    machines: list[Machine],
    binary: Path,
    *,
    xcr0_value: int = XCR0_AVX,
    use_xsave: bool = True,
    stop_at_phase: bool = False,
) -> tuple[Machine, PortRecorder, PortRecorder]:
    machine = machine_from(machines, machine_config(binary, entry=LOAD_ADDRESS))
    machine.cpu.use_xsave = use_xsave
    tc = context(machine)
    set_xcr0(tc, xcr0_value)
    tc.write_reg("cr4", tc.regs["cr4"] | CR4_OSXSAVE)
    phase, result = attach_ports(machine, stop_at_phase)
    return machine, phase, result


def context(machine: Machine) -> X86ThreadContext:
    tc = machine.cpu.get_context()
    assert isinstance(tc, X86ThreadContext)
    return tc


def ymm_registers(tc: X86ThreadContext) -> list[Ymm]:
    return [from_bytes(read_ymm(tc, n)) for n in range(16)]


def memory_ymm(machine: Machine, address: int) -> list[Ymm]:
    data = machine.system.read_memory(address, 16 * 32)
    return [from_bytes(data[32 * n : 32 * n + 32]) for n in range(16)]


def hexes(values: list[Ymm] | list[tuple[int, ...]]) -> list[str]:
    return [to_bytes(value).hex() for value in values]


def result_of(recorder: PortRecorder) -> int:
    low, high = recorder.values
    return low | high << 32


# -- tests: an AVX guest --------------------------------------------------------
def test_avx_guest_leaves_every_ymm_register_exactly(layout, xsave_guests, machines):
    machine, phase, result = new_machine(machines, xsave_guests["avx"])
    assert machine.run().cause == "all CPUs halted"

    expected = avx_phase2(avx_phase1(avx_initial()))
    assert phase.values == [1]
    assert hex(result_of(result)) == hex(checksum(expected))
    assert hexes(memory_ymm(machine, SEEN)) == hexes(avx_initial())
    assert hexes(memory_ymm(machine, FINAL)) == hexes(expected)
    tc = context(machine)
    assert hexes(ymm_registers(tc)) == hexes(expected)
    assert xcr0(tc) == XCR0_AVX
    assert tc.parts["xsave"]["xstate_bv"] & 0b100, "AVX state not marked in use"
    dump = machine.cpu.dump("xcrs", "xsave")
    assert dump["xcrs"]["xcr0"] == "0x7"
    assert dump["xcrs"]["xcr0_components"] == ["x87", "sse", "avx"]
    assert dump["xsave"]["avx"]["ymm"] == hexes(expected)
    assert "avx" in dump["xsave"]["xstate_bv_components"]


def test_ymm_written_through_the_context_reach_the_guest(layout, xsave_guests, machines):
    machine, _, result = new_machine(machines, xsave_guests["avx-from-host"])
    tc = context(machine)
    start: list[Ymm] = host_values(16, 4, seed=7)
    for n, value in enumerate(start):
        write_ymm(tc, n, to_bytes(value))
    assert machine.run().cause == "all CPUs halted"

    expected = avx_phase2(avx_phase1(start))
    assert hexes(memory_ymm(machine, SEEN)) == hexes(start), "the guest saw other YMM values"
    assert hex(result_of(result)) == hex(checksum(expected))
    assert hexes(ymm_registers(context(machine))) == hexes(expected)


def test_host_side_round_trip_keeps_the_rest_of_the_area(layout, xsave_guests, machines):
    """YMM values written through the context land in KVM; then a change of
    one XMM register through tc.fpu reaches KVM and leaves every YMM upper
    half and every other register as it was."""
    machine, _, _ = new_machine(machines, xsave_guests["avx"])
    cpu = machine.cpu
    tc = context(machine)
    values: list[Ymm] = host_values(16, 4, seed=99)
    for n, value in enumerate(values):
        write_ymm(tc, n, to_bytes(value))
    tc.fpu.mxcsr = 0x7F80
    cpu.startup()
    cpu.sync_kvm_state()
    in_kvm = cpu.dump("xsave", "fpu")
    assert in_kvm["xsave"]["avx"]["ymm"] == hexes(values)
    assert in_kvm["fpu"]["mxcsr"] == 0x7F80

    tc.mark_dirty()
    xmm = list(tc.fpu.xmm)
    xmm[5] = bytes(range(16))
    tc.fpu.xmm = xmm
    cpu.sync_kvm_state()
    values[5] = from_bytes(bytes(range(16))) + values[5][2:]
    assert cpu.dump("xsave")["xsave"]["avx"]["ymm"] == hexes(values)

    # KVM → a fresh context: the same registers come back.
    fresh = X86ThreadContext()
    cpu.part("fpu").read_into(fresh)
    assert hexes(ymm_registers(fresh)) == hexes(values)
    assert fresh.fpu.mxcsr == 0x7F80


def test_avx_guest_survives_checkpoint_and_restore(layout, xsave_guests, machines, tmp_path):
    binary = xsave_guests["avx"]
    first, _, _ = new_machine(machines, binary, stop_at_phase=True)
    assert first.run().cause == "phase 1 done"
    assert first.cpu.state is RunState.RUNNING_SERVICE_COMPLETION
    before = ymm_registers(context(first))
    assert hexes(before) == hexes(avx_phase1(avx_initial()))

    checkpoint = first.checkpoint(tmp_path / "ckpt")
    first.close()
    machines.remove(first)

    second = Machine.restore(checkpoint, before_load=attach_ports_only)
    machines.append(second)
    restored = context(second)
    assert hexes(ymm_registers(restored)) == hexes(before)
    assert xcr0(restored) == XCR0_AVX
    assert restored.regs["cr4"] & CR4_OSXSAVE
    # Into the fresh vCPU, and straight from KVM: the same values.
    second.cpu.startup()
    second.cpu.sync_kvm_state()
    dump = second.cpu.dump("xsave", "xcrs")
    assert dump["xsave"]["avx"]["ymm"] == hexes(before)
    assert dump["xcrs"]["xcr0"] == "0x7"

    assert second.run().cause == "all CPUs halted"
    expected = avx_phase2(avx_phase1(avx_initial()))
    assert hex(result_of(second.devices["result"])) == hex(checksum(expected))
    assert second.devices["phase"].values == [1]
    assert hexes(ymm_registers(context(second))) == hexes(expected)


# -- tests: AVX-512 ---------------------------------------------------------------
def test_avx512_state_round_trips_through_a_guest(layout, xsave_guests, machines):
    needed = {"opmask", "zmm_hi256", "hi16_zmm"}
    have = set(decode_xfeatures(layout.supported))
    flags = cpu_flags()
    if not needed <= have or not {"avx512f", "avx512bw"} <= flags:
        lacking = sorted((needed - have) | ({"avx512f", "avx512bw"} - flags))
        pytest.skip(f"host lacks: {', '.join(lacking)}")
    machine, _, _ = new_machine(machines, xsave_guests["avx512"], xcr0_value=XCR0_AVX512)
    tc = context(machine)
    zmm = host_values(32, 8, seed=3)
    opmask = [(0x0123456789ABCDEF * (n + 1) ^ (n << 60)) & M64 for n in range(8)]
    for n, value in enumerate(zmm):
        write_zmm(tc, n, to_bytes(value))
    for n, value in enumerate(opmask):
        write_opmask(tc, n, value)
    assert machine.run().cause == "all CPUs halted"

    seen = machine.system.read_memory(SEEN, 32 * 64)
    assert [seen[64 * n : 64 * n + 64].hex() for n in range(32)] == hexes(zmm)
    seen_k = machine.system.read_memory(SEEN_K, 64)
    assert [int.from_bytes(seen_k[8 * n : 8 * n + 8], "little") for n in range(8)] == opmask

    expected = [list(value) for value in zmm]
    for n in range(32):
        nxt = expected[(n + 1) % 32]
        expected[n] = [(a + b) & M64 for a, b in zip(expected[n], nxt, strict=True)]
    expected_k = list(opmask)
    for n in range(1, 8):
        expected_k[n] ^= expected_k[n - 1]
    tc = context(machine)
    assert [read_zmm(tc, n).hex() for n in range(32)] == hexes([tuple(v) for v in expected])
    assert [hex(read_opmask(tc, n)) for n in range(8)] == [hex(k) for k in expected_k]
    dump = machine.cpu.dump("xsave")["xsave"]
    assert dump["opmask"]["k"] == [f"{k:#018x}" for k in expected_k]
    assert dump["hi16_zmm"]["zmm"]["zmm31"] == to_bytes(tuple(expected[31])).hex()
    assert {"opmask", "zmm_hi256", "hi16_zmm"} <= set(dump["xstate_bv_components"])


# -- tests: the legacy path --------------------------------------------------------
def test_legacy_path_carries_x87_and_sse_only(layout, xsave_guests, machines):
    """With use_xsave off, KVM_GET/SET_FPU carry XMM (the low YMM halves)
    and MXCSR, x87 too; the YMM upper halves are not carried, so a restore
    into a fresh VM starts them from zero."""
    machine, _, _ = new_machine(machines, xsave_guests["avx-from-host"], use_xsave=False)
    tc = context(machine)
    start: list[Ymm] = host_values(16, 4, seed=11)
    for n, value in enumerate(start):
        write_ymm(tc, n, to_bytes(value))
    st7 = bytes.fromhex("0080ffffffffffffff3f") + bytes(6)  # 1.9999... in x87 extended
    tc.fpu.fpr = [*tc.fpu.fpr[:7], st7]
    tc.fpu.fcw = 0x27F
    cpu = machine.cpu
    cpu.startup()
    cpu.sync_kvm_state()
    fpu = cpu.dump("fpu")["fpu"]
    assert fpu["xmm"] == [to_bytes(v)[:16].hex() for v in start]
    assert (fpu["fcw"], fpu["st"][7]) == (0x27F, st7[:10].hex())
    # Only the low halves went in: the guest starts with zero upper halves.
    assert cpu.dump("xsave")["xsave"]["avx"]["ymm"] == [
        (to_bytes(v)[:16] + bytes(16)).hex() for v in start
    ]

    assert machine.run().cause == "all CPUs halted"
    low_only: list[Ymm] = [(*v[:2], 0, 0) for v in start]
    expected = avx_phase2(avx_phase1(low_only))
    assert hexes(memory_ymm(machine, SEEN)) == hexes(low_only)
    tc = context(machine)
    assert [x.hex() for x in tc.fpu.xmm] == [to_bytes(v)[:16].hex() for v in expected]
    assert "xsave" not in tc.parts, "the legacy path must not claim the XSAVE state"
    assert (tc.fpu.fcw, tc.fpu.fpr[7]) == (0x27F, st7)


def test_legacy_path_checkpoint_loses_the_ymm_upper_halves(
    layout, xsave_guests, machines, tmp_path
):
    first, _, _ = new_machine(machines, xsave_guests["avx"], use_xsave=False, stop_at_phase=True)
    assert first.run().cause == "phase 1 done"
    at_stop = avx_phase1(avx_initial())
    checkpoint = first.checkpoint(tmp_path / "ckpt")
    first.close()
    machines.remove(first)

    second = Machine.restore(checkpoint, before_load=attach_ports_only)
    machines.append(second)
    second.cpu.use_xsave = False
    assert second.run().cause == "all CPUs halted"
    # Phase 2 ran on the XMM halves only: not the uninterrupted result.
    low_only: list[Ymm] = [(*v[:2], 0, 0) for v in at_stop]
    expected = avx_phase2(low_only)
    assert hex(result_of(second.devices["result"])) == hex(checksum(expected))
    assert checksum(expected) != checksum(avx_phase2(at_stop))


# -- tests: errors and the layout ----------------------------------------------------
def test_invalid_xcr0_is_an_error_naming_the_ioctl(layout, xsave_guests, machines):
    machine, _, _ = new_machine(machines, xsave_guests["avx"], xcr0_value=0b100)  # AVX alone
    with pytest.raises(KvmIoctlError, match=r"KVM_SET_XCRS.*EINVAL|EINVAL.*KVM_SET_XCRS") as info:
        machine.run()
    assert "xcr0=0x4" in str(info.value)


def test_state_of_a_component_the_host_lacks_is_refused(layout, xsave_guests, machines):
    machine, _, _ = new_machine(machines, xsave_guests["avx"])
    tc = context(machine)
    tc.parts["xsave"] = {"xstate_bv": 3, "component30": ["01" * 8]}
    with pytest.raises(SimulationError, match=r"'component30'.*does not support"):
        machine.run()


def test_layout_is_the_hosts_cpuid_leaf_0xd(layout):
    """The standard offsets: AVX upper halves at 576, 256 bytes."""
    avx = layout.component("avx")
    assert (avx.offset, avx.size, avx.rows, avx.key) == (576, 256, 16, "ymm_hi128")
    assert layout.size >= 4096
    for component in layout.components:
        assert component.offset + component.size <= layout.size
    if layout.supported & 0xE0 == 0xE0:
        shapes = {c.name: (c.size, c.rows) for c in layout.components}
        assert shapes["opmask"] == (64, 8)
        assert shapes["zmm_hi256"] == (512, 16)
        assert shapes["hi16_zmm"] == (1024, 16)
