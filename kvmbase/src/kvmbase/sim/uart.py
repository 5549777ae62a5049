"""A 16550-compatible UART: transmit to a terminal or a file, line status."""

from __future__ import annotations

from typing import IO, Any

from kvmbase.sim.bus import Device
from kvmbase.sim.console import ConsoleOutput

# Register offsets (DLAB = 0 unless noted).
RBR_THR = 0  # receive buffer / transmit holding; divisor latch low with DLAB
IER = 1  # interrupt enable; divisor latch high with DLAB
IIR_FCR = 2  # interrupt identification (read) / FIFO control (write)
LCR = 3
MCR = 4
LSR = 5
MSR = 6
SCR = 7

LCR_DLAB = 0x80
LSR_DATA_READY = 0x01
LSR_THR_EMPTY = 0x20
LSR_TRANSMITTER_EMPTY = 0x40
IIR_NO_INTERRUPT = 0x01
IIR_FIFO_ENABLED = 0xC0
MSR_CTS_DSR_DCD = 0xB0

REGISTER_SPAN = 8


class Uart16550(Device):
    """Transmits what the guest writes; receives from :meth:`feed`.

    ``output`` is ``"stdout"``, ``"stderr"``, ``"none"`` or a file path.
    Everything transmitted is also kept in :attr:`transmitted`.
    """

    def __init__(self, name: str = "uart0", output: str | IO[bytes] = "stdout") -> None:
        super().__init__(name)
        self.transmitted = bytearray()
        self._receive = bytearray()
        self._console = ConsoleOutput(output)
        self.ier = 0
        self.lcr = 0x03
        self.mcr = 0
        self.scr = 0
        self.fcr = 0
        self.divisor = 1

    def feed(self, data: bytes) -> None:
        """Queue bytes for the guest to receive."""
        self._receive.extend(data)

    def read(self, offset: int, size: int) -> int:
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR:
            if dlab:
                return self.divisor & 0xFF
            if self._receive:
                return self._receive.pop(0)
            return 0
        if offset == IER:
            return (self.divisor >> 8) & 0xFF if dlab else self.ier
        if offset == IIR_FCR:
            return IIR_NO_INTERRUPT | (IIR_FIFO_ENABLED if self.fcr & 1 else 0)
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            ready = LSR_DATA_READY if self._receive else 0
            return LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY | ready
        if offset == MSR:
            return MSR_CTS_DSR_DCD
        return self.scr

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR:
            if dlab:
                self.divisor = (self.divisor & 0xFF00) | value
            else:
                self._transmit(value)
        elif offset == IER:
            if dlab:
                self.divisor = (self.divisor & 0x00FF) | (value << 8)
            else:
                self.ier = value & 0x0F
        elif offset == IIR_FCR:
            self.fcr = value
        elif offset == LCR:
            self.lcr = value
        elif offset == MCR:
            self.mcr = value
        elif offset == SCR:
            self.scr = value

    def _transmit(self, byte: int) -> None:
        self.transmitted.append(byte)
        self._console.write_byte(byte)

    def flush(self) -> None:
        self._console.flush()

    def serialize(self) -> dict[str, Any]:
        return {
            "ier": self.ier,
            "lcr": self.lcr,
            "mcr": self.mcr,
            "scr": self.scr,
            "fcr": self.fcr,
            "divisor": self.divisor,
            "receive": self._receive.hex(),
            "transmitted": self.transmitted.hex(),
        }

    def unserialize(self, state: dict[str, Any]) -> None:
        for key in ("ier", "lcr", "mcr", "scr", "fcr", "divisor"):
            setattr(self, key, int(state[key]))
        self._receive = bytearray.fromhex(state["receive"])
        self.transmitted = bytearray.fromhex(state["transmitted"])

    def close(self) -> None:
        self._console.close()
