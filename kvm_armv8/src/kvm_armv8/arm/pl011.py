"""A PL011-compatible UART: enough for a console (Linux's amba-pl011 included).

Transmission is immediate: the transmit FIFO is never full and never busy
(FR.TXFF = FR.BUSY = 0, TXFE = 1).  Received bytes come from :meth:`feed`;
FR.RXFE says whether any wait.  The interrupt (receive, transmit) is raised
on a GIC SPI through ``interrupt(level)`` when the machine wires one.  The
peripheral and PrimeCell ID registers read as ARM's PL011 r1p5 (as QEMU's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from kvmbase.sim.bus import Device
from kvmbase.sim.console import ConsoleOutput

DR = 0x000
RSR_ECR = 0x004
FR = 0x018
ILPR = 0x020
IBRD = 0x024
FBRD = 0x028
LCR_H = 0x02C
CR = 0x030
IFLS = 0x034
IMSC = 0x038
RIS = 0x03C
MIS = 0x040
ICR = 0x044
DMACR = 0x048
ID_BASE = 0xFE0

FR_BUSY = 1 << 3
FR_RXFE = 1 << 4
FR_TXFF = 1 << 5
FR_RXFF = 1 << 6
FR_TXFE = 1 << 7
INT_RX = 1 << 4
INT_TX = 1 << 5
#: PeriphID0-3 then PCellID0-3 (0xFE0-0xFFC)
ID_REGISTERS = (0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1)
REGISTER_SPAN = 0x1000
_SAVED = ("ilpr", "ibrd", "fbrd", "lcr_h", "cr", "ifls", "imsc", "ris", "dmacr")


class Pl011(Device):
    """``output``: ``"stdout"``, ``"stderr"``, ``"none"``, a path or a stream.
    Everything transmitted is kept in :attr:`transmitted`."""

    def __init__(self, name: str = "uart0", output: str | IO[bytes] = "stdout",
                 interrupt: Callable[[bool], None] | None = None) -> None:
        super().__init__(name)
        self.transmitted = bytearray()
        self._receive = bytearray()
        self._console = ConsoleOutput(output)
        self.interrupt = interrupt
        self.ilpr = self.ibrd = self.fbrd = self.lcr_h = self.ifls = 0
        self.cr = 0x300  # TXE, RXE
        self.imsc = self.dmacr = 0
        self.ris = INT_TX  # the transmit FIFO is always below its level
        self._line = False

    # -- the guest's side -----------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset == DR:
            value = self._receive.pop(0) if self._receive else 0
            if not self._receive:
                self.ris &= ~INT_RX
                self._update()
            return value
        if offset == FR:
            return FR_TXFE | (FR_RXFE if not self._receive else 0)
        if ID_BASE <= offset < ID_BASE + 4 * len(ID_REGISTERS) and offset % 4 == 0:
            return ID_REGISTERS[(offset - ID_BASE) // 4]
        registers = {RSR_ECR: 0, ILPR: self.ilpr, IBRD: self.ibrd, FBRD: self.fbrd,
                     LCR_H: self.lcr_h, CR: self.cr, IFLS: self.ifls, IMSC: self.imsc,
                     RIS: self.ris, MIS: self.ris & self.imsc, DMACR: self.dmacr}
        return registers.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == DR:
            self._transmit(value & 0xFF)
            return
        if offset == ICR:
            self.ris &= ~value | INT_TX
            self._update()
            return
        names = {ILPR: "ilpr", IBRD: "ibrd", FBRD: "fbrd", LCR_H: "lcr_h", CR: "cr",
                 IFLS: "ifls", IMSC: "imsc", DMACR: "dmacr"}
        name = names.get(offset)
        if name is not None:
            setattr(self, name, value & 0xFFFF)
            if offset == IMSC:
                self._update()

    # -- the host's side ------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Queue bytes for the guest to receive."""
        self._receive.extend(data)
        if data:
            self.ris |= INT_RX
            self._update()

    def _update(self) -> None:
        line = bool(self.ris & self.imsc)
        if line != self._line:
            self._line = line
            if self.interrupt is not None:
                self.interrupt(line)

    def _transmit(self, byte: int) -> None:
        self.transmitted.append(byte)
        self._console.write_byte(byte)

    def flush(self) -> None:
        self._console.flush()

    def serialize(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in _SAVED}
        state["receive"] = self._receive.hex()
        state["transmitted"] = self.transmitted.hex()
        return state

    def unserialize(self, state: dict[str, Any]) -> None:
        for name in _SAVED:
            setattr(self, name, int(state[name]))
        self._receive = bytearray.fromhex(state["receive"])
        self.transmitted = bytearray.fromhex(state["transmitted"])
        self._line = False
        self._update()

    def close(self) -> None:
        self._console.close()
