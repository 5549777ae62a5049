"""Register state round trips between the thread context and the real KVM."""

from __future__ import annotations

import struct

import pytest

from kvm_x86 import layout
from kvmbase.errors import SimulationError

pytestmark = pytest.mark.kvm

M64 = (1 << 64) - 1
GPRS = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
)  # fmt: skip
REGS_ENTRY = 0x100010  # regs.S: the transforming code (0x100000 only halts)

CF, PF, AF, ZF, SF, TF, IF, DF, OF = 1, 4, 0x10, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800
IOPL, NT, AC, VIF, VIP, ID = 0x3000, 0x4000, 0x40000, 0x80000, 0x100000, 0x200000


def bswap(value: int) -> int:
    return int.from_bytes(value.to_bytes(8, "little"), "big")


def transformed(before: dict[str, int]) -> dict[str, int]:
    """What regs.S does to the GPRs (see its header)."""
    b = before
    return {
        "rax": (b["rax"] + 0x1111) & M64,
        "rbx": ~b["rbx"] & M64,
        "rcx": bswap(b["rcx"]),
        "rdx": (b["rdx"] - 0x2222) & M64,
        "rsi": b["rdi"],
        "rdi": b["rsi"],
        "rsp": (b["rsp"] + 0x40) & M64,
        "rbp": (b["rbp"] * 3) & M64,
        "r8": ~b["r8"] & M64,
        "r9": bswap(b["r9"]),
        "r10": (b["r10"] + 0x7FFFFFFF) & M64,
        "r11": (b["r11"] * 2) & M64,
        "r12": b["r13"],
        "r13": b["r12"],
        "r14": (b["r14"] - 1) & M64,
        "r15": ~bswap(b["r15"]) & M64,
    }


def initial_gprs(seed: int) -> dict[str, int]:
    """Distinct 64-bit values with high bits set, so truncation would show."""
    values = {}
    for index, name in enumerate(GPRS):
        value = (0x9E3779B97F4A7C15 * (index + seed)) & M64
        values[name] = value ^ (0xF0 << 56)
    return values


@pytest.mark.parametrize(
    "rflags",
    [
        0x2,
        0x2 | CF | PF | AF | ZF | SF | DF | OF | AC | ID,
        0x2 | PF | ZF | IOPL | NT | VIF | VIP,
    ],
    ids=["reserved-only", "arithmetic-df-ac-id", "iopl-nt-vif-vip"],
)
def test_gprs_and_rflags_round_trip(guests, make_machine, rflags):
    binary = guests["regs"]
    machine = make_machine(binary)
    cpu = machine.cpu
    before = initial_gprs(seed=rflags)
    for name, value in before.items():
        cpu.write_register(name, value)
    cpu.write_register("rip", REGS_ENTRY)
    cpu.write_register("rflags", rflags)

    result = machine.run()

    assert result.cause == "all CPUs halted"
    expected = transformed(before)
    got = {name: cpu.read_register(name) for name in GPRS}
    assert {k: hex(v) for k, v in got.items()} == {k: hex(v) for k, v in expected.items()}
    # cmc flipped CF, cld cleared DF; no other flag changed
    assert hex(cpu.read_register("rflags")) == hex((rflags ^ CF) & ~DF)
    # hlt is the image's last byte
    assert cpu.read_register("rip") == layout.LOAD_ADDRESS + binary.stat().st_size
    assert machine.statistics()["cpu0"]["num_halt"] == 1


def test_registers_written_after_a_run_reach_the_vcpu(guests, make_machine):
    """Halt at the entry, then write every GPR and RIP, wake the thread, run on."""
    machine = make_machine(guests["regs"])
    cpu = machine.cpu
    assert machine.run().cause == "all CPUs halted"
    assert cpu.read_register("rip") == layout.LOAD_ADDRESS + 1

    before = initial_gprs(seed=7)
    for name, value in before.items():
        cpu.write_register(name, value)
    cpu.write_register("rip", REGS_ENTRY)
    cpu.write_register("rflags", 0x2 | CF)
    cpu.thread.activate()
    assert machine.run().cause == "all CPUs halted"

    expected = transformed(before)
    assert {n: hex(cpu.read_register(n)) for n in GPRS} == {n: hex(v) for n, v in expected.items()}
    assert cpu.read_register("rflags") == 0x2
    assert machine.statistics()["cpu0"]["num_halt"] == 2


def test_writing_a_stale_context_is_refused(guests, make_machine):
    machine = make_machine(guests["halt"])
    machine.run()
    # the vCPU ran: its state is ahead of the thread context
    with pytest.raises(SimulationError, match="stale"):
        machine.cpu.thread.write_reg("rax", 1)


def test_segments_and_control_registers_after_a_run(guests, make_machine):
    machine = make_machine(guests["halt"])
    machine.run()
    tc = machine.cpu.get_context()
    assert tc.regs["cr0"] == layout.CR0_LONG_MODE
    assert tc.regs["cr3"] == layout.PML4
    assert tc.regs["cr4"] == layout.CR4_LONG_MODE
    assert tc.regs["efer"] == layout.EFER_LONG_MODE
    assert tc.regs["rsp"] == layout.STACK_TOP
    cs = tc.segments["cs"]
    assert (cs.selector, cs.base, cs.type, cs.l, cs.db, cs.dpl, cs.present) == (
        layout.KERNEL_CS, 0, 11, 1, 0, 0, 1,
    )  # fmt: skip
    for name in ("ds", "es", "fs", "gs", "ss"):
        seg = tc.segments[name]
        assert (seg.selector, seg.base, seg.limit, seg.type, seg.dpl) == (
            layout.KERNEL_DS, 0, 0xFFFFFFFF, 3, 0,
        ), name  # fmt: skip
    tr = tc.segments["tr"]
    assert (tr.selector, tr.base, tr.limit) == (
        layout.TSS_SELECTOR, layout.TSS, layout.TSS_LIMIT,
    )  # fmt: skip
    assert (tc.gdt.base, tc.gdt.limit) == (layout.GDT, layout.GDT_LIMIT)
    assert (tc.idt.base, tc.idt.limit) == (layout.IDT, layout.IDT_LIMIT)


def test_guest_sees_the_layout_state(guests, make_machine):
    """The guest reads CR0/CR3/CR4/EFER, selectors, GDTR and IDTR itself."""
    machine = make_machine(guests["sysregs"])
    assert machine.run().cause == "all CPUs halted"
    cpu = machine.cpu
    seen = {name: cpu.read_register(name) for name in ("r8", "r9", "r10", "r11")}
    assert seen == {
        "r8": layout.CR0_LONG_MODE,
        "r9": layout.PML4,
        "r10": layout.CR4_LONG_MODE,
        "r11": layout.EFER_LONG_MODE,
    }
    assert cpu.read_register("r12") == layout.KERNEL_CS
    assert cpu.read_register("r13") == layout.KERNEL_DS
    assert cpu.read_register("r14") == layout.KERNEL_DS
    assert cpu.read_register("r15") == layout.TSS_SELECTOR
    gdtr = struct.unpack("<HQ", machine.system.read_memory(0x100100, 10))
    idtr = struct.unpack("<HQ", machine.system.read_memory(0x100110, 10))
    assert gdtr == (layout.GDT_LIMIT, layout.GDT)
    assert idtr == (layout.IDT_LIMIT, layout.IDT)


# -- CPL3 and SSE (sse.S) ------------------------------------------------------------
SSE_HLT = 0x100200  # the hlt at CPL3 that faults back to CPL0
MXCSR_SEEN = 0x100300  # where the guest stores the MXCSR it started with
KADD = (0x0101010101010101, 0x8000000000000001)


def sse_expected(xmm: list[bytes]) -> list[bytes]:
    """xmm<n> = (xmm<n> paddq KADD) pxor (16 bytes of n * 0x11)."""
    out = []
    for n, row in enumerate(xmm):
        lo, hi = struct.unpack("<QQ", row)
        summed = struct.pack("<QQ", (lo + KADD[0]) & M64, (hi + KADD[1]) & M64)
        out.append(bytes(byte ^ (n * 0x11) for byte in summed))
    return out


def test_cpl3_round_trip_frame(guests, make_machine):
    """iretq to CPL3, hlt there faults (#GP) into the CPL0 handler."""
    machine = make_machine(guests["sse"])
    assert machine.run().cause == "all CPUs halted"
    frame = struct.unpack("<6Q", machine.system.read_memory(layout.STACK_TOP - 48, 48))
    # error code, RIP of the hlt, user CS, RFLAGS (0x2 as iretq set it, with
    # RF which a fault sets in the pushed image), user RSP, user SS
    assert frame == (0, SSE_HLT, layout.USER_CS, 0x10002, 0x70000, layout.USER_DS)
    tc = machine.cpu.get_context()
    assert tc.segments["cs"].selector == layout.KERNEL_CS
    assert tc.segments["ss"].selector == 0  # 64-bit interrupt to CPL0 loads a null SS
    assert tc.regs["rsp"] == layout.STACK_TOP - 48
    rip = tc.regs["rip"]
    assert machine.system.read_memory(rip - 2, 2) == b"\xfa\xf4"  # cli; hlt


def test_sse_registers_round_trip(guests, make_machine):
    machine = make_machine(guests["sse"])
    cpu = machine.cpu
    initial = [bytes((16 * n + i * 7 + 3) & 0xFF for i in range(16)) for n in range(16)]
    initial[15] = b"\xff" * 16  # carries out of both qwords
    cpu.thread.fpu.xmm = list(initial)
    cpu.thread.mark_dirty()

    assert machine.run().cause == "all CPUs halted"

    got = cpu.get_context().fpu.xmm
    assert [row.hex() for row in got] == [row.hex() for row in sse_expected(initial)]


def test_mxcsr_written_reaches_the_guest(guests, make_machine):
    machine = make_machine(guests["sse"])
    cpu = machine.cpu
    cpu.thread.fpu.mxcsr = 0x7F80  # default masks, rounding toward zero
    cpu.thread.mark_dirty()

    assert machine.run().cause == "all CPUs halted"

    seen = struct.unpack("<I", machine.system.read_memory(MXCSR_SEEN, 4))[0]
    assert hex(seen) == hex(0x7F80), "the guest did not start with the MXCSR written"


def test_mxcsr_set_by_the_guest_reads_back(guests, make_machine):
    machine = make_machine(guests["sse"])
    assert machine.run().cause == "all CPUs halted"
    # the guest started with the reset value and loaded 0x9F80 (flush to zero)
    seen = struct.unpack("<I", machine.system.read_memory(MXCSR_SEEN, 4))[0]
    assert seen == 0x1F80
    assert hex(machine.cpu.get_context().fpu.mxcsr) == hex(0x9F80)
