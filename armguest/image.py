"""The initramfs: a cached base image and a job appended to it per run.

* **base** (cached under ``<cache>/base/<key>.cpio``): busybox, ``/init``,
  Debian's arm64 Python 3.11 with its standard library and libraries, and the
  aarch64 wheels of the dependencies and of pytest, all precompiled to
  ``.pyc``.  Its key hashes the .deb file names, the wheel set, ``/init``, the
  host Python that compiled the bytecode and :data:`BASE_FORMAT`.
* **job** (rebuilt each run, small): the project's distributions as source
  trees with generated ``.dist-info``, the in-guest test folders with the
  repository's test configuration, and ``/job/run.sh``.

The kernel unpacks the two archives, one after the other, into one root.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from armguest import debs, host, wheels
from armguest.cpio import CpioWriter
from armguest.errors import HarnessError, HostLacksError
from armguest.host import log
from armguest.paths import GUEST_FILES, REPO_ROOT, cache_dir
from armguest.project import distributions, install_source_tree

#: Bump when the layout of the base image changes.
BASE_FORMAT = "1"

#: Where things go inside the guest.
GUEST_SITE = "usr/lib/python3/dist-packages"  # wheels (base)
GUEST_LOCAL_SITE = "usr/local/lib/python3.11/dist-packages"  # the project (job)
GUEST_REPO = "job/repo"

#: Parts of the extracted packages the guest never uses.
_PRUNE = (
    "usr/share",
    "usr/lib/aarch64-linux-gnu/gconv",
    "usr/lib/python3.11/test",
    "usr/lib/python3.11/idlelib",
    "usr/lib/python3.11/tkinter",
    "usr/lib/python3.11/turtledemo",
    "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data",
    "etc/ld.so.conf.d",
    "sbin",
    "usr/sbin",
)


def _host_python311() -> str:
    """A CPython 3.11 on the host to precompile for the guest's 3.11 (same magic)."""
    if sys.version_info[:2] == (3, 11) and sys.implementation.name == "cpython":
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise HostLacksError("a CPython 3.11 to precompile the guest's bytecode")
    return found


def precompile(staging: Path, folders: Sequence[str]) -> None:
    """Compile ``.py`` under ``folders`` (relative to ``staging``) as the guest will see them."""
    targets = [str(staging / folder) for folder in folders if (staging / folder).is_dir()]
    if not targets:
        return
    command = [
        _host_python311(), "-m", "compileall", "-q", "-j", "0",
        "--invalidation-mode", "unchecked-hash",
        "-s", str(staging), "-p", "/", *targets,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    # compileall exits 1 when a file does not compile (some packages ship
    # Python-2 era examples); the guest then compiles it if ever imported.
    if result.returncode not in (0, 1):
        raise HarnessError(f"compileall failed:\n{result.stdout}{result.stderr}")


def _digest(parts: Sequence[str | bytes]) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0")
    return sha.hexdigest()[:16]


@dataclass(frozen=True)
class BaseImage:
    key: str
    cpio: Path


def base_image() -> BaseImage:
    """The cached base initramfs, built when its inputs changed."""
    packages = debs.rootfs_debs()
    wheel_set = wheels.wheel_set()
    init = (GUEST_FILES / "init").read_bytes()
    key = _digest(
        [BASE_FORMAT, *(p.filename for p, _ in packages), wheel_set.key, init,
         _host_python311(), sys.version if sys.version_info[:2] == (3, 11) else ""]
    )  # fmt: skip
    target = cache_dir() / "base" / f"{key}.cpio"
    if target.is_file():
        return BaseImage(key, target)
    log(f"building the base initramfs {key}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix="staging-") as scratch:
        staging = Path(scratch) / "root"
        for _, deb in packages:
            host.extract_deb(deb, staging)
        for prune in _PRUNE:
            shutil.rmtree(staging / prune, ignore_errors=True)
        for test_module in (staging / "usr/lib/python3.11/lib-dynload").glob("_test*.so"):
            test_module.unlink()
        python = staging / "usr/bin/python3"
        if not python.exists():
            python.symlink_to("python3.11")
        site = staging / GUEST_SITE
        site.mkdir(parents=True, exist_ok=True)
        for wheel in wheel_set.wheels:
            wheels.unpack_wheel(wheel, site)
        precompile(staging, ["usr/lib/python3.11", GUEST_SITE])
        for name in ("proc", "sys", "dev", "tmp", "root", "job", "run", "bin"):
            (staging / name).mkdir(exist_ok=True)
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            writer = CpioWriter(out)
            writer.tree(staging)
            writer.char_device("dev/console", 5, 1)
            writer.char_device("dev/null", 1, 3, 0o666)
            writer.file("init", init, 0o755)
            writer.close()
        partial.rename(target)
    for stale in target.parent.glob("*.cpio"):
        if stale != target:
            stale.unlink()
    return BaseImage(key, target)


#: Files at the top of ``tests/`` that the in-guest tests may import (conftest,
#: shared helpers); the test folders themselves are chosen per run.
def _top_level_test_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "tests").glob("*.py") if path.is_file())


PREBUILD_HOOK = "armguest_prebuild.py"

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def _run_prebuild(source: Path, copy: Path) -> None:
    """Run ``<folder>/armguest_prebuild.py DEST`` on the host, if the folder has one.

    The hook builds what its tests need and cannot build inside the guest
    (guest binaries: no binutils there) and writes it under DEST, the job's
    copy of the folder.  It runs with the repository as working directory,
    the host's Python, and the aarch64 and arm binutils installed.
    """
    hook = source / PREBUILD_HOOK
    if not hook.is_file():
        return
    result = subprocess.run(
        [sys.executable, str(hook), str(copy)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise HarnessError(
            f"{hook.relative_to(REPO_ROOT)} exited {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )


#: Seconds one in-guest test phase may take (the report plugin's watchdog).
DEFAULT_TEST_TIMEOUT = 60


def _run_script(test_paths: Sequence[str], pytest_args: Sequence[str]) -> str:
    args = " ".join(shlex.quote(arg) for arg in [*pytest_args, *test_paths])
    test_timeout = float(os.environ.get("ARMGUEST_TEST_TIMEOUT", DEFAULT_TEST_TIMEOUT))
    return f"""#!/bin/sh
# Generated by armguest: run the in-guest tests, report each result.
cd /{GUEST_REPO}
export PYTHONPATH=/job/lib ARMGUEST_TEST_TIMEOUT={test_timeout:g} ARMGUEST_IN_GUEST=1
python3 -m pytest -p no:cacheprovider -p armguest_report --color=no -q \\
    --continue-on-collection-errors {args}
"""


def job_archive(test_paths: Sequence[str], out: Path, pytest_args: Sequence[str] = ()) -> None:
    """Write the job cpio for the test folders ``test_paths`` (relative to the repo)."""
    with tempfile.TemporaryDirectory(prefix="armguest-job-") as scratch:
        staging = Path(scratch)
        site = staging / GUEST_LOCAL_SITE
        for dist in distributions(REPO_ROOT):
            install_source_tree(dist, site, staging / "usr/local/bin")
        repo = staging / GUEST_REPO
        (repo / "tests").mkdir(parents=True)
        shutil.copy2(REPO_ROOT / "pyproject.toml", repo / "pyproject.toml")
        for helper in _top_level_test_files(REPO_ROOT):
            shutil.copy2(helper, repo / "tests" / helper.name)
        for relative in test_paths:
            source = REPO_ROOT / relative
            if not source.is_dir():
                raise HarnessError(f"no test folder {relative}")
            copy = repo / relative
            shutil.copytree(source, copy, ignore=_IGNORED)
            _run_prebuild(source, copy)
        lib = staging / "job" / "lib"
        lib.mkdir(parents=True)
        shutil.copy2(GUEST_FILES / "armguest_report.py", lib / "armguest_report.py")
        run_sh = staging / "job" / "run.sh"
        run_sh.write_text(_run_script(test_paths, pytest_args))
        run_sh.chmod(0o755)
        precompile(staging, [GUEST_LOCAL_SITE, "job/lib"])
        with out.open("wb") as handle:
            writer = CpioWriter(handle)
            writer.tree(staging)
            writer.close()


def initramfs(test_paths: Sequence[str], run_dir: Path, pytest_args: Sequence[str] = ()) -> Path:
    """base + job, as the one file QEMU's ``-initrd`` takes."""
    base = base_image()
    job = run_dir / "job.cpio"
    job_archive(test_paths, job, pytest_args)
    combined = run_dir / "initrd.cpio"
    with combined.open("wb") as out:
        for part in (base.cpio, job):
            with part.open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
    job.unlink()
    return combined
