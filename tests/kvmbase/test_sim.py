"""The embedded host's parts, without KVM: event queue, bus, UART, contexts."""

from __future__ import annotations

import io

import pytest

from kvmbase.sim.bus import Bus, Device
from kvmbase.sim.eventq import MAX_TICK, Event, EventQueue
from kvmbase.sim.memory import GuestMemory
from kvmbase.sim.scratch import ScratchDevice
from kvmbase.sim.thread_context import ThreadContext, ThreadStatus
from kvmbase.sim.uart import LSR, LSR_DATA_READY, LSR_THR_EMPTY, Uart16550


def test_events_run_in_tick_then_priority_then_insertion_order() -> None:
    queue = EventQueue()
    ran: list[str] = []
    for name, when, priority in [("c", 20, 0), ("a", 10, 5), ("b", 10, 0), ("d", 10, 0)]:
        queue.schedule(Event(lambda n=name: ran.append(n), name, priority), when)
    exit_event = queue.run()
    assert ran == ["b", "d", "a", "c"]
    assert exit_event.cause == "no events left to simulate"
    assert exit_event.tick == 20


def test_descheduled_and_rescheduled_events() -> None:
    queue = EventQueue()
    ran: list[int] = []
    event = Event(lambda: ran.append(queue.cur_tick), "e")
    queue.schedule(event, 5)
    queue.deschedule(event)
    assert queue.next_tick() == MAX_TICK
    queue.schedule(event, 7)
    queue.reschedule(event, 9)
    queue.run()
    assert ran == [9]
    with pytest.raises(RuntimeError, match="not scheduled"):
        queue.deschedule(event)


def test_scheduling_twice_or_in_the_past_is_refused() -> None:
    queue = EventQueue()
    event = Event(lambda: None, "e")
    queue.schedule(event, 10)
    with pytest.raises(RuntimeError, match="already scheduled"):
        queue.schedule(event, 11)
    queue.run()
    with pytest.raises(RuntimeError, match="in the past"):
        queue.schedule(Event(lambda: None, "late"), 3)


def test_run_stops_at_the_limit_and_on_request() -> None:
    queue = EventQueue()
    queue.schedule(Event(lambda: queue.exit_loop("asked", 3), "stop"), 50)
    queue.schedule(Event(lambda: None, "later"), 100)
    first = queue.run(until=40)
    assert (first.cause, first.tick) == ("tick limit reached", 40)
    assert queue.next_stop() == 50
    second = queue.run()
    assert (second.cause, second.code, second.tick) == ("asked", 3, 50)
    third = queue.run()
    assert (third.cause, third.tick) == ("no events left to simulate", 100)


def test_exit_requested_before_run_is_honoured() -> None:
    queue = EventQueue()
    queue.schedule(Event(lambda: None, "e"), 10)
    queue.exit_loop("early")
    assert queue.run().cause == "early"
    assert queue.next_tick() == 10


def test_bus_routes_by_address_and_refuses_overlaps() -> None:
    bus = Bus()
    low, high = ScratchDevice("low", 0x100), ScratchDevice("high", 0x100)
    bus.attach(high, 0x2000, 0x100)
    bus.attach(low, 0x1000, 0x100)
    assert bus.find(0x1000).device is low  # type: ignore[union-attr]
    assert bus.find(0x10FF).device is low  # type: ignore[union-attr]
    assert bus.find(0x1100) is None
    assert bus.find(0x20AB).device is high  # type: ignore[union-attr]
    assert bus.find(0xFFF) is None
    with pytest.raises(ValueError, match=r"overlaps <low at \[0x1000, 0x1100\)>"):
        bus.attach(ScratchDevice("x", 16), 0x10F0, 0x20)
    bus.detach(low)
    assert bus.find(0x1000) is None
    assert bus.devices() == [high]


def test_scratch_device_reads_back_what_was_written() -> None:
    scratch = ScratchDevice("s", 64)
    scratch.write(8, 8, 0x0123456789ABCDEF)
    assert scratch.read(8, 4) == 0x89ABCDEF
    assert scratch.read(12, 2) == 0x4567
    restored = ScratchDevice("s", 64)
    restored.unserialize(scratch.serialize())
    assert (restored.reads, restored.writes) == (2, 1)
    assert restored.read(8, 8) == 0x0123456789ABCDEF


def test_uart_transmits_and_reports_line_status() -> None:
    stream = io.BytesIO()
    uart = Uart16550("u", stream)
    assert uart.read(LSR, 1) & LSR_THR_EMPTY
    assert not uart.read(LSR, 1) & LSR_DATA_READY
    for byte in b"hi\n":
        uart.write(0, 1, byte)
    assert stream.getvalue() == b"hi\n"
    assert bytes(uart.transmitted) == b"hi\n"
    uart.feed(b"k")
    assert uart.read(LSR, 1) & LSR_DATA_READY
    assert uart.read(0, 1) == ord("k")
    assert not uart.read(LSR, 1) & LSR_DATA_READY


def test_uart_divisor_latch_does_not_transmit() -> None:
    uart = Uart16550("u", "none")
    uart.write(3, 1, 0x80)  # DLAB
    uart.write(0, 1, 0x01)
    uart.write(1, 1, 0x00)
    uart.write(3, 1, 0x03)
    assert uart.divisor == 1
    assert uart.transmitted == b""
    uart.write(0, 1, ord("x"))
    restored = Uart16550("u", "none")
    restored.unserialize(uart.serialize())
    assert restored.transmitted == b"x" and restored.lcr == 0x03


def test_uart_writes_to_a_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "out.txt"
    uart = Uart16550("u", str(path))
    for byte in b"line\n":
        uart.write(0, 1, byte)
    uart.close()
    assert path.read_bytes() == b"line\n"


class _Context(ThreadContext):
    arch = "test"
    register_names = ("pc", "sp")


def test_thread_context_tracks_dirty_writes_and_status() -> None:
    tc = _Context()
    dirty: list[bool] = []
    statuses: list[tuple[ThreadStatus, ThreadStatus]] = []
    tc.attach(lambda: dirty.append(True), lambda old, new: statuses.append((old, new)))
    tc.write_reg("pc", 0x1000)
    assert tc.read_reg("pc") == 0x1000 and dirty == [True]
    with pytest.raises(KeyError, match="test has no register 'ip'; it has pc, sp"):
        tc.write_reg("ip", 1)
    tc.activate()
    tc.suspend()
    assert statuses == [
        (ThreadStatus.HALTED, ThreadStatus.ACTIVE),
        (ThreadStatus.ACTIVE, ThreadStatus.SUSPENDED),
    ]


def test_thread_context_state_round_trip_and_mismatch() -> None:
    tc = _Context()
    tc.write_regs({"pc": 5, "sp": 6})
    tc.activate()
    other = _Context()
    other.copy_from(tc)
    assert other.regs == {"pc": 5, "sp": 6}
    assert other.status is ThreadStatus.ACTIVE
    bad = tc.save_state() | {"arch": "x86"}
    with pytest.raises(ValueError, match="architecture 'x86'"):
        other.load_state(bad)


def test_guest_memory_bounds_and_alignment() -> None:
    memory = GuestMemory(0x1000, 0x2000, "ram")
    memory.write(0x1FFC, b"\x01\x02\x03\x04")
    assert memory.read(0x1FFC, 4) == b"\x01\x02\x03\x04"
    memory.write_u64(0x2000, 0xDEADBEEF)
    assert memory.read_u64(0x2000) == 0xDEADBEEF
    with pytest.raises(IndexError, match=r"outside ram \[0x1000, 0x3000\)"):
        memory.read(0x2FFF, 2)
    memory.close()
    with pytest.raises(ValueError, match="4 KiB aligned"):
        GuestMemory(0x1000, 0x1001)


def test_base_device_says_what_it_cannot_do() -> None:
    device = Device("plain")
    with pytest.raises(NotImplementedError, match="plain cannot be read"):
        device.read(0, 4)
