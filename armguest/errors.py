"""The two ways the harness can fail."""

from __future__ import annotations


class HarnessError(Exception):
    """The harness ran and something went wrong (a bug, a broken guest, a timeout).

    ``console`` holds the guest's console output when there was a boot.
    """

    def __init__(self, message: str, console: str = "") -> None:
        super().__init__(message)
        self.console = console


class HostLacksError(HarnessError):
    """The harness cannot run on this host: what it lacks is the message.

    Tests turn this into a skip with the reason ``host lacks: <message>``.
    """
