"""pytest plugin that runs inside the guest: one result per test, to the console.

Loaded with ``-p armguest_report``.  The console is the only channel out of
the guest.  Each test's start and result are printed as they happen
(``ARMGUEST-START:<base64 node id>``, ``ARMGUEST-T:<base64 JSON>``), so a
guest that hangs or dies still tells which tests ended how and which one was
running.  At the end of the session the whole report follows as base64 JSON
between marker lines, with a SHA-256 to detect a garbled transfer:

    ARMGUEST-RESULTS-BEGIN
    ARMGUEST-R:<base64 chunk>
    ...
    ARMGUEST-RESULTS-END sha256=<hex of the JSON>

Each result: node id, outcome (passed, failed, skipped, xfailed, xpassed,
error), the skip or xfail reason, the failure text, the duration.  A module
that fails to import is reported as one failed entry with its node id.

A watchdog (``SIGALRM``, ``$ARMGUEST_TEST_TIMEOUT`` seconds, default 60)
fails a test that runs too long; the signal also interrupts a ``KVM_RUN``
that never exits, so one stuck vCPU does not cost the whole session.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

TEST_TIMEOUT = float(os.environ.get("ARMGUEST_TEST_TIMEOUT", "60"))

_results: dict[str, dict[str, Any]] = {}
_order: list[str] = []


def _uptime() -> float:
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


_start_uptime = _uptime()


def _entry(nodeid: str) -> dict[str, Any]:
    if nodeid not in _results:
        _order.append(nodeid)
        _results[nodeid] = {
            "nodeid": nodeid,
            "outcome": "passed",
            "reason": "",
            "longrepr": "",
            "duration": 0.0,
        }
    return _results[nodeid]


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr or "")


def _emit(text: str) -> None:
    data = text.encode()
    while data:
        data = data[os.write(1, data) :]


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


class GuestTestTimeoutError(Exception):
    """A test ran longer than ``$ARMGUEST_TEST_TIMEOUT`` seconds."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise GuestTestTimeoutError(
        f"the test ran longer than {TEST_TIMEOUT:g} s (ARMGUEST_TEST_TIMEOUT)"
    )


@contextmanager
def _watchdog() -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# One watchdog per phase: pytest turns what they raise into the phase's failure.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _watchdog():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _watchdog():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    with _watchdog():
        yield


def pytest_runtest_logstart(nodeid: str) -> None:
    _emit(f"\nARMGUEST-START:{_b64(nodeid)}\n")


def pytest_runtest_logfinish(nodeid: str) -> None:
    if nodeid in _results:
        _emit(f"\nARMGUEST-T:{_b64(json.dumps(_results[nodeid]))}\n")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _entry(report.nodeid)
    entry["duration"] += report.duration
    wasxfail = getattr(report, "wasxfail", None)
    if report.failed:
        text = report.longreprtext
        if report.when != "call":
            entry["outcome"] = "error" if entry["outcome"] != "failed" else "failed"
            text = f"[{report.when}] {text}"
        else:
            entry["outcome"] = "failed"
        entry["longrepr"] = (entry["longrepr"] + "\n" + text).strip()
    elif report.skipped and entry["outcome"] == "passed":
        if wasxfail is not None:
            entry["outcome"], entry["reason"] = "xfailed", str(wasxfail)
        else:
            entry["outcome"], entry["reason"] = "skipped", _skip_reason(report)
    elif report.when == "call" and wasxfail is not None and entry["outcome"] == "passed":
        entry["outcome"], entry["reason"] = "xpassed", str(wasxfail)
    sections = [f"{name}\n{content}" for name, content in report.sections if content]
    if report.failed and sections:
        entry["longrepr"] += "\n" + "\n".join(sections)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        entry = _entry(report.nodeid or "<collection>")
        entry["outcome"] = "error"
        entry["longrepr"] = f"[collection] {report.longreprtext}"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    document = {
        "exitstatus": int(exitstatus),
        "uptime_start": _start_uptime,
        "uptime_end": _uptime(),
        "tests": [_results[nodeid] for nodeid in _order],
    }
    payload = json.dumps(document).encode()
    encoded = base64.b64encode(payload).decode()
    lines = ["", "ARMGUEST-RESULTS-BEGIN"]
    lines.extend("ARMGUEST-R:" + encoded[i : i + 96] for i in range(0, len(encoded), 96))
    lines.append(f"ARMGUEST-RESULTS-END sha256={hashlib.sha256(payload).hexdigest()}")
    _emit("\n".join(lines) + "\n")
