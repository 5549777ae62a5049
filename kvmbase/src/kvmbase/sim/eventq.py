"""Time in ticks and the event queue that orders everything by it."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

TICKS_PER_SECOND = 10**12  # 1 tick = 1 ps, as in gem5
MAX_TICK = (1 << 63) - 1

DEFAULT_PRIORITY = 0
CPU_TICK_PRIORITY = 50  # after device events of the same tick, as in gem5


def ticks_from_frequency(frequency_hz: int) -> int:
    """The clock period of a frequency, in ticks."""
    return max(1, TICKS_PER_SECOND // frequency_hz)


class Event:
    """Something to happen at a tick: a callback, scheduled at most once."""

    __slots__ = ("_sequence", "callback", "name", "priority", "scheduled", "when")

    def __init__(
        self, callback: Callable[[], None], name: str, priority: int = DEFAULT_PRIORITY
    ) -> None:
        self.callback = callback
        self.name = name
        self.priority = priority
        self.when = 0
        self.scheduled = False
        self._sequence = 0

    def __repr__(self) -> str:
        state = f"at {self.when}" if self.scheduled else "unscheduled"
        return f"<Event {self.name} {state}>"


@dataclass(frozen=True)
class ExitEvent:
    """Why the event loop returned."""

    cause: str
    code: int
    tick: int


class EventQueue:
    """A tick-ordered queue of events with a current time.

    Descheduled events stay in the heap and are skipped when they surface:
    cheaper than removing them, and the CPU reschedules on every VM exit.
    """

    def __init__(self) -> None:
        self.cur_tick = 0
        self._heap: list[tuple[int, int, int, Event]] = []
        self._sequence = 0
        #: the exit asked for (cause, code), until run() returns with it
        self.pending_exit: tuple[str, int] | None = None
        self._until = MAX_TICK
        #: bumped whenever the head of the queue or the run limit may change,
        #: so a caller can keep next_stop() until it does
        self.version = 0

    def schedule(self, event: Event, when: int) -> None:
        if event.scheduled:
            raise RuntimeError(f"{event.name} is already scheduled at tick {event.when}")
        if when < self.cur_tick:
            raise RuntimeError(
                f"{event.name} scheduled at tick {when}, in the past of {self.cur_tick}"
            )
        self._sequence += 1
        self.version += 1
        event.when = when
        event.scheduled = True
        event._sequence = self._sequence
        heapq.heappush(self._heap, (when, event.priority, self._sequence, event))

    def deschedule(self, event: Event) -> None:
        if not event.scheduled:
            raise RuntimeError(f"{event.name} is not scheduled")
        event.scheduled = False
        self.version += 1

    def reschedule(self, event: Event, when: int) -> None:
        if event.scheduled:
            event.scheduled = False
            self.version += 1
        self.schedule(event, when)

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            _, _, sequence, event = heap[0]
            if event.scheduled and event._sequence == sequence:
                return
            heapq.heappop(heap)

    def next_tick(self) -> int:
        """When the next event is due; :data:`MAX_TICK` if none is."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else MAX_TICK

    def next_stop(self) -> int:
        """When the running loop must regain control: next event or run limit."""
        self._drop_stale()
        due = self._heap[0][0] if self._heap else MAX_TICK
        return due if due < self._until else self._until

    def empty(self) -> bool:
        return self.next_tick() == MAX_TICK

    def exit_loop(self, cause: str, code: int = 0) -> None:
        """Make :meth:`run` return after the event being serviced.

        Safe to call from another thread (a plain attribute store); pair it
        with a kick of any vCPU that is inside the guest.
        """
        if self.pending_exit is None:
            self.pending_exit = (cause, code)

    @property
    def exit_requested(self) -> bool:
        return self.pending_exit is not None

    def service_one(self) -> bool:
        """Run the next event; False if there was none."""
        self._drop_stale()
        if not self._heap:
            return False
        when, _, _, event = heapq.heappop(self._heap)
        self.version += 1
        self.cur_tick = when
        event.scheduled = False
        event.callback()
        return True

    def run(self, until: int = MAX_TICK) -> ExitEvent:
        """Service events until one asks to exit, time reaches ``until``, or none is left."""
        heap = self._heap
        self._until = until
        self.version += 1
        try:
            while self.pending_exit is None:
                self._drop_stale()
                if not heap:
                    return ExitEvent("no events left to simulate", 0, self.cur_tick)
                when = heap[0][0]
                if when > until:
                    self.cur_tick = max(self.cur_tick, until)
                    return ExitEvent("tick limit reached", 0, self.cur_tick)
                _, _, _, event = heapq.heappop(heap)
                self.version += 1
                self.cur_tick = when
                event.scheduled = False
                event.callback()
            (cause, code), self.pending_exit = self.pending_exit, None
            return ExitEvent(cause, code, self.cur_tick)
        finally:
            self._until = MAX_TICK
            self.version += 1
