"""Host side of the ARM suites: boot the arm64 guest once, one test per in-guest test.

At collection time (once per session) the harness in ``armguest/`` boots
Debian's arm64 kernel under ``qemu-system-aarch64`` and runs pytest inside on
the in-guest folders (``tests/arm_inner``, ``tests/kvm_armv8``,
``tests/kvm_arm``, those that exist).  Each in-guest test becomes one test
here, parametrized by its in-guest node id: it passes if it passed inside,
fails with the inner failure text, skips with the inner reason.

When the harness cannot run on this host (no root or apt to install QEMU, not
a Debian host), one test per folder skips with ``host lacks: ...``; any
other harness failure fails them with the guest's console.  With
``--collect-only`` or a ``-m`` expression that leaves out ``slow`` tests,
nothing is booted and one placeholder per folder is collected.
"""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the harness package lives at the repo root
    sys.path.insert(0, str(REPO_ROOT))

import armguest  # noqa: E402

HOST_LACKS = "host lacks: "
CONSOLE_TAIL_LINES = 120


@dataclass(frozen=True)
class InnerTest:
    """One in-guest test's result, or a placeholder for a folder that did not run."""

    nodeid: str
    outcome: str  # passed failed error skipped xfailed xpassed | lacks harness-error not-run
    reason: str = ""
    text: str = ""

    def check(self) -> None:
        if self.outcome in ("passed", "xpassed"):
            return
        if self.outcome == "skipped":
            reason = self.reason
            if reason.startswith(HOST_LACKS):
                reason += " (in the arm64 guest)"
            pytest.skip(reason)
        if self.outcome == "xfailed":
            pytest.xfail(self.reason)
        if self.outcome == "lacks":
            pytest.skip(HOST_LACKS + self.reason)
        if self.outcome == "not-run":
            pytest.skip(f"not booted: {self.reason}")  # deselected or collect-only
        pytest.fail(self.text or f"{self.nodeid}: {self.outcome}", pytrace=False)


def _console_tail(console: str) -> str:
    lines = console.rstrip().splitlines()
    tail = lines[-CONSOLE_TAIL_LINES:]
    cut = f"[... {len(lines) - len(tail)} earlier lines ...]\n" if len(lines) > len(tail) else ""
    return cut + "\n".join(tail)


def _placeholders(folders: list[str], outcome: str, reason: str, text: str = "") -> list[InnerTest]:
    return [InnerTest(folder, outcome, reason, text) for folder in folders]


def _slow_deselected(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("markexpr", "") or "")
    return re.search(r"\bnot\s+slow\b", markexpr) is not None


def _run_guest(config: pytest.Config) -> list[InnerTest]:
    folders = armguest.inner_test_folders()
    if config.getoption("collectonly") or _slow_deselected(config):
        return _placeholders(folders, "not-run", "collect-only, or -m leaves out slow tests")
    try:
        run = armguest.run_tests(folders)
    except armguest.HostLacksError as exc:
        return _placeholders(folders, "lacks", f"{exc} (to run the ARM suites in an arm64 guest)")
    except armguest.HarnessError as exc:
        text = (
            f"the arm64 guest harness failed: {exc}\n"
            f"--- guest console (whole: {armguest.console_log()}) ---\n"
        )
        return _placeholders(folders, "harness-error", "", text + _console_tail(exc.console))
    except Exception:  # a bug in the harness: fail the tests, not the collection
        text = "the arm64 guest harness crashed:\n" + traceback.format_exc()
        return _placeholders(folders, "harness-error", "", text)
    tests = [
        InnerTest(
            nodeid=str(test["nodeid"]),
            outcome=str(test["outcome"]),
            reason=str(test["reason"]),
            text=str(test["longrepr"]),
        )
        for test in run.tests
    ]
    if run.problem:  # a timeout or crash: what was reported, and the run itself fails
        text = (
            f"the arm64 guest run did not end normally: {run.problem}\n"
            f"--- guest console (whole: {armguest.console_log()}) ---\n"
        )
        tests.append(
            InnerTest("(guest run)", "harness-error", "", text + _console_tail(run.console))
        )
    if not tests:
        text = "the arm64 guest ran no test\n--- guest console ---\n" + _console_tail(run.console)
        return _placeholders(folders, "harness-error", "", text)
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.timings.items())
    config.stash[_SUMMARY] = f"arm64 guest: {len(tests)} tests, exit {run.status}; {timings}"
    return tests


_RESULTS = pytest.StashKey[list[InnerTest]]()
_SUMMARY = pytest.StashKey[str]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``inner_test`` with the in-guest results (one boot per session)."""
    if "inner_test" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if _RESULTS not in config.stash:
        config.stash[_RESULTS] = _run_guest(config)
    results = config.stash[_RESULTS]
    metafunc.parametrize("inner_test", results, ids=[test.nodeid for test in results])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary = terminalreporter.config.stash.get(_SUMMARY, None)
    if summary:
        terminalreporter.write_line(summary)
