"""Where a console device's output goes: a terminal stream, a file, or nowhere."""

from __future__ import annotations

import sys
from typing import IO


class ConsoleOutput:
    """``output`` is ``"stdout"``, ``"stderr"``, ``"none"``, a file path
    (appended to) or an open binary stream."""

    def __init__(self, output: str | IO[bytes]) -> None:
        self._owns_stream = False
        self.stream: IO[bytes] | None
        if not isinstance(output, str):
            self.stream = output
        elif output == "stdout":
            self.stream = sys.stdout.buffer
        elif output == "stderr":
            self.stream = sys.stderr.buffer
        elif output == "none":
            self.stream = None
        else:
            self.stream = open(output, "ab")  # noqa: SIM115 - closed in close()
            self._owns_stream = True

    def write_byte(self, byte: int) -> None:
        """Write one byte; a newline flushes, so lines appear as they end."""
        if self.stream is not None:
            self.stream.write(bytes((byte,)))
            if byte == 0x0A:
                self.stream.flush()

    def flush(self) -> None:
        if self.stream is not None:
            self.stream.flush()

    def close(self) -> None:
        """Flush, and close a file this object opened."""
        self.flush()
        if self._owns_stream and self.stream is not None:
            self.stream.close()
        self.stream = None
