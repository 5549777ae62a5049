"""The bundled demo guest (kvm_x86/guests/demo.S): its output and its result."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kvm_x86.guests import guest_path
from kvm_x86.plugin import DEMO_MMIO_ADDRESS, demo_config
from kvmbase import Machine
from kvmbase.sim.scratch import ScratchDevice

M64 = (1 << 64) - 1
SEED = 0x9E3779B97F4A7C15
DEFAULT_ITERATIONS = 50_000_000
ITERATIONS_OFFSET = 8  # image offsets demo.S documents
RESULT_OFFSET = 16
LOAD_ADDRESS = 0x100000


def xorshift64_step(x: int) -> int:
    x ^= (x << 13) & M64
    x ^= x >> 7
    x ^= (x << 17) & M64
    return x


def xorshift64_loop(iterations: int, x: int = SEED) -> int:
    for _ in range(iterations):
        x = xorshift64_step(x)
    return x


def xorshift64_power(iterations: int, x: int = SEED) -> int:
    """The same as the loop, by squaring the step's matrix over GF(2).

    A map is kept as the images of the 64 unit vectors.
    """

    def apply(columns: list[int], v: int) -> int:
        out = 0
        bit = 0
        while v:
            if v & 1:
                out ^= columns[bit]
            v >>= 1
            bit += 1
        return out

    power = [xorshift64_step(1 << bit) for bit in range(64)]
    while iterations:
        if iterations & 1:
            x = apply(power, x)
        power = [apply(power, column) for column in power]
        iterations >>= 1
    return x


def expected_output(result: int) -> bytes:
    return (
        "kvmbase demo: hello from a 64-bit guest\n"
        "MMIO: scratch device at 0xd0000000 read back what was written\n"
        "dropping to ring 3 for the compute loop\n"
        "ring 3: running xorshift64\n"
        f"ring 3: result 0x{result:016x}\n"
        "ring 0 again (hlt in ring 3 faulted); halting\n"
        "exiting with status 0 through the guest-ops page\n"
    ).encode()


def demo_with_image(image: Path) -> dict:
    data = dict(demo_config())
    data["image"] = {**data["image"], "path": str(image)}
    return data


def check_demo(machine: Machine, iterations: int, result: int) -> None:
    run = machine.run()
    assert (run.cause, run.code) == ("guest exited with status 0", 0)
    output = bytes(machine.devices["uart0"].transmitted)
    assert output == expected_output(result)
    stored = struct.unpack("<Q", machine.system.read_memory(LOAD_ADDRESS + RESULT_OFFSET, 8))[0]
    assert hex(stored) == hex(result)
    patched = machine.system.read_memory(LOAD_ADDRESS + ITERATIONS_OFFSET, 8)
    assert struct.unpack("<Q", patched)[0] == iterations
    scratch = machine.devices["scratch0"]
    assert scratch.data[0:4] == (0x5EED1234).to_bytes(4, "little")
    assert scratch.data[8:16] == (0x0123456789ABCDEF).to_bytes(8, "little")
    assert (scratch.reads, scratch.writes) == (2, 2)
    stats = machine.statistics()["cpu0"]
    # every character: one LSR poll (the UART is always ready) and one write
    assert stats["num_io"] == 2 * len(output)
    # four scratch accesses and the write of the exit status
    assert stats["num_mmio"] == 5
    assert stats["num_halt"] == 0
    assert stats["num_vm_exits"] == stats["num_io"] + stats["num_mmio"]
    # Run on after the exit, the demo halts.
    assert machine.run().cause == "all CPUs halted"


def test_power_matches_loop():
    for n in (0, 1, 2, 3, 1000, 4097):
        assert xorshift64_power(n) == xorshift64_loop(n)


@pytest.mark.kvm
@pytest.mark.parametrize("iterations", [1, 1000, 54321])
def test_demo_patched_iterations(tmp_path, iterations):
    image = bytearray(guest_path("demo.bin").read_bytes())
    assert struct.unpack_from("<Q", image, ITERATIONS_OFFSET)[0] == DEFAULT_ITERATIONS
    assert struct.unpack_from("<Q", image, RESULT_OFFSET)[0] == 0
    struct.pack_into("<Q", image, ITERATIONS_OFFSET, iterations)
    patched = tmp_path / "demo.bin"
    patched.write_bytes(image)
    with Machine.from_data(demo_with_image(patched), uart_output="none") as machine:
        check_demo(machine, iterations, xorshift64_loop(iterations))


@pytest.mark.kvm
def test_demo_as_shipped():
    """50,000,000 iterations at CPL3 run natively: about 0.1 s here."""
    with Machine.from_data(demo_config(), uart_output="none") as machine:
        check_demo(machine, DEFAULT_ITERATIONS, xorshift64_power(DEFAULT_ITERATIONS))


class WrongScratch(ScratchDevice):
    """A scratch device whose reads come back with the low bit flipped."""

    def read(self, offset: int, size: int) -> int:
        return super().read(offset, size) ^ 1


@pytest.mark.kvm
def test_demo_ends_with_status_3_when_its_mmio_check_fails() -> None:
    data = dict(demo_config())
    data["devices"] = [d for d in data["devices"] if d["type"] != "mmio-scratch"]
    with Machine.from_data(data, uart_output="none") as machine:
        machine.add_device(WrongScratch("scratch0", 0x1000), DEMO_MMIO_ADDRESS, 0x1000)
        run = machine.run()
        assert (run.cause, run.code) == ("guest exited with status 3", 3)
        assert bytes(machine.devices["uart0"].transmitted) == (  # type: ignore[attr-defined]
            b"kvmbase demo: hello from a 64-bit guest\n"
            b"MMIO: scratch device read back the wrong value\n"
        )
        assert machine.statistics()["cpu0"]["num_mmio"] == 3  # write, read, exit
