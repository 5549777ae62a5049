"""One call from nothing to per-test results: tools, kernel, images, boot."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from armguest import debs, host, image, qemu
from armguest.errors import HarnessError
from armguest.paths import REPO_ROOT, cache_dir

#: The test folders whose tests run inside the arm64 guest, when they exist.
INNER_TEST_FOLDERS = ("tests/arm_inner", "tests/kvm_armv8", "tests/kvm_arm")


def inner_test_folders(root: Path = REPO_ROOT) -> list[str]:
    """The folders of :data:`INNER_TEST_FOLDERS` that exist and hold tests."""
    return [folder for folder in INNER_TEST_FOLDERS if any((root / folder).glob("**/test_*.py"))]


def console_log() -> Path:
    """Where the last boot's whole console output is kept."""
    return cache_dir() / "run" / "last-console.log"


@contextmanager
def _locked() -> Iterator[None]:
    """One harness at a time per cache (parallel pytest runs share it)."""
    with (cache_dir() / "lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Prepared:
    kernel: debs.Kernel
    base: image.BaseImage
    seconds: float


def _prepare() -> Prepared:
    start = time.monotonic()
    host.ensure_host_tools()
    kernel = debs.kernel()
    base = image.base_image()
    return Prepared(kernel, base, time.monotonic() - start)


def prepare() -> Prepared:
    """Install the host tools, fetch the kernel, build the base image (all cached)."""
    with _locked():
        return _prepare()


def run_tests(
    test_paths: Sequence[str] | None = None,
    pytest_args: Sequence[str] = (),
    *,
    timeout: float | None = None,
) -> qemu.GuestRun:
    """Boot once and run pytest on ``test_paths`` (repo-relative folders) inside.

    Raises :class:`~armguest.errors.HostLacksError` when this host cannot run the
    harness, :class:`~armguest.errors.HarnessError` (with the console) when
    the guest did not run the tests to the end.
    """
    paths = list(test_paths) if test_paths is not None else inner_test_folders()
    with _locked():  # the shared cache; boots themselves run side by side
        prepared = _prepare()
    runs = cache_dir() / "run"
    runs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=runs, prefix="boot-") as scratch:
        build_start = time.monotonic()
        initrd = image.initramfs(paths, Path(scratch), pytest_args)
        job_seconds = time.monotonic() - build_start
        try:
            run = qemu.boot(
                prepared.kernel.image,
                initrd,
                timeout=timeout if timeout is not None else qemu.timeout_from_env(),
            )
        except HarnessError as exc:
            _keep_console(exc.console)
            raise
    _keep_console(run.console)
    run.timings = {"prepare": prepared.seconds, "job": job_seconds, "boot": run.wall_seconds}
    if run.init_uptime is not None:
        run.timings["guest_init_uptime"] = run.init_uptime
    if run.results is not None and float(run.results["uptime_start"]) >= 0:
        run.timings["guest_pytest_start_uptime"] = float(run.results["uptime_start"])
        run.timings["guest_pytest_end_uptime"] = float(run.results["uptime_end"])
    return run


def _keep_console(console: str) -> None:
    partial = console_log().with_suffix(f".{os.getpid()}")
    partial.write_text(console)
    partial.replace(console_log())
