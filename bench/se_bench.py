"""Syscall-emulation benchmark: busybox applets native, under ``kvmbase exec``
and under QEMU user mode, side by side in one run.

    .venv/bin/python bench/se_bench.py [--size 256MiB] [--gzip-size 32MiB] [--repeat 5]

Every workload runs Debian's static ``/bin/busybox`` (package busybox-static)
on a file argument (no shell, no pipe) four ways:

- **native**: ``busybox APPLET ARGS FILE`` in a subprocess;
- **qemu-user**: ``qemu-x86_64-static busybox ...`` (package
  qemu-user-static; installed with apt-get when missing and this runs as root,
  unless ``--no-install``);
- **exec CLI**: ``.venv/bin/kvmbase exec busybox ...`` in a subprocess, so
  it includes Python's start-up and the imports;
- **exec API**: ``kvm_x86.se.Process(argv)`` in this process: building the
  machine, ``run()`` and ``close()``.  ``exec run()`` is the ``run()`` part
  alone (``Process.host_seconds``).

Each program's stdout goes to a file in the cache folder and is checked
against the native run's (the digest line, or the gzip stream's SHA-256), so
a wrong result cannot look fast.  The figures are medians over ``--repeat``
rounds; a round runs every workload once in every mode, the order of the
modes rotating between rounds, so the machine's noise hits all modes alike.
At the end the per-syscall statistics of the last ``exec API`` run of each
workload show where exec's time goes.

The inputs are deterministic pseudo-random files made once into the cache
folder (``bench/.build/se`` by default): random bytes for the digests,
pseudo-random words for gzip (compressible, which is what makes ``-9`` work).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = BENCH_DIR / ".build" / "se"
BUSYBOX = "/bin/busybox"
QEMU = "qemu-x86_64-static"
SEED = 20261123
MODES = ("native", "qemu-user", "exec CLI", "exec API")
MiB = 1 << 20


def parse_size(text: str) -> int:
    """``256MiB``, ``32M``, ``1GiB``, ``4096`` -> bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    number, unit = int(match.group(1)), match.group(2).upper()
    return number << {"": 0, "K": 10, "M": 20, "G": 30}[unit]


def show_size(size: int) -> str:
    return f"{size / MiB:g} MiB" if size % (MiB // 4) == 0 else f"{size} B"


# ---- inputs ------------------------------------------------------------------


def _write_atomically(path: Path, chunks: Iterator[bytes]) -> None:
    part = path.with_suffix(path.suffix + ".part")
    with part.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    part.rename(path)


def random_file(cache: Path, size: int) -> Path:
    """``size`` bytes from ``random.Random(SEED)``: incompressible."""
    path = cache / f"random-{SEED}-{size}.bin"
    if not path.exists():

        def chunks() -> Iterator[bytes]:
            rng = random.Random(SEED)
            left = size
            while left:
                step = min(left, 4 * MiB)
                yield rng.randbytes(step)
                left -= step

        _write_atomically(path, chunks())
    return path


def text_file(cache: Path, size: int) -> Path:
    """``size`` bytes of pseudo-random words and lines: compresses about 2:1,
    so ``gzip -9`` searches its match chains (random bytes would not)."""
    path = cache / f"text-{SEED}-{size}.txt"
    if not path.exists():

        def chunks() -> Iterator[bytes]:
            rng = random.Random(SEED)
            letters = "etaoinshrdlucmfwypvbgkjqxz"
            weights = [26 - i for i in range(26)]
            words = [
                "".join(rng.choices(letters, weights, k=rng.randint(1, 10))) for _ in range(8192)
            ]
            left = size
            while left:
                picked = rng.choices(words, k=40_000)
                for i in range(11, len(picked), 12):
                    picked[i] += "\n"
                block = " ".join(picked).encode()[: min(left, MiB)]
                yield block
                left -= len(block)

        _write_atomically(path, chunks())
    return path


# ---- workloads and modes -----------------------------------------------------


@dataclass
class Workload:
    name: str
    args: list[str]  # busybox applet and options; the input file comes last
    input: Path
    size: int
    #: SHA-256 of the native run's stdout: every other run must match it
    expected: str = ""
    seconds: dict[str, list[float]] = field(default_factory=dict)
    run_only: list[float] = field(default_factory=list)
    statistics: dict[str, Any] | None = None
    stats_text: str = ""

    @property
    def argv(self) -> list[str]:
        return [BUSYBOX, *self.args, str(self.input)]

    @property
    def label(self) -> str:
        return f"{' '.join(self.args)} ({show_size(self.size)})"


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(4 * MiB):
            sha.update(chunk)
    return sha.hexdigest()


def _run_subprocess(argv: list[str], out: Path, cwd: Path) -> float:
    with out.open("wb") as stdout:
        started = time.perf_counter()
        done = subprocess.run(argv, stdout=stdout, stdin=subprocess.DEVNULL, cwd=cwd)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit status {done.returncode}")
    return seconds


@contextlib.contextmanager
def _stdout_to(path: Path) -> Iterator[None]:
    """Point fd 1 at ``path`` for a while (``Process`` dups fds 0-2 when built)."""
    sys.stdout.flush()
    saved = os.dup(1)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(target, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(target)


def run_api(argv: list[str], out: Path, cwd: Path) -> tuple[float, float, dict[str, Any], str]:
    """One in-process run: (whole seconds, run() seconds, statistics, their table)."""
    from kvm_x86.se import Process

    started = time.perf_counter()
    with _stdout_to(out):
        process = Process(argv, cwd=cwd)  # its fd 1 is a dup of ``out``
    try:
        status = process.run()
        stats, text = process.statistics(), process.format_statistics()
    finally:
        process.close()
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"exec API {' '.join(argv)}: exit status {status}")
    return seconds, process.host_seconds, stats, text


def kvmbase_command() -> str:
    beside = Path(sys.executable).parent / "kvmbase"
    if beside.exists():
        return str(beside)
    found = shutil.which("kvmbase")
    if found is None:
        raise SystemExit("se_bench: no kvmbase command (run it with .venv/bin/python)")
    return found


def ensure_qemu(install: bool) -> str | None:
    """The QEMU user-mode binary, installed from Debian's archive if allowed."""
    found = shutil.which(QEMU)
    if found is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing qemu-user-static for {QEMU} (apt-get) ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "qemu-user-static"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        found = shutil.which(QEMU)
    if found is None:
        print(
            f"se_bench: no {QEMU}; the qemu-user column is left out "
            "(as root: apt-get install qemu-user-static)",
            file=sys.stderr,
        )
    return found


def one_run(
    mode: str, workload: Workload, cache: Path, kvmbase: str, qemu: str | None
) -> float:
    out = cache / f"out-{mode.replace(' ', '-')}"
    argv = workload.argv
    if mode == "native":
        seconds = _run_subprocess(argv, out, cache)
    elif mode == "qemu-user":
        assert qemu is not None
        seconds = _run_subprocess([qemu, *argv], out, cache)
    elif mode == "exec CLI":
        seconds = _run_subprocess([kvmbase, "exec", *argv], out, cache)
    else:
        seconds, run_seconds, stats, text = run_api(argv, out, cache)
        workload.run_only.append(run_seconds)
        workload.statistics, workload.stats_text = stats, text
    digest = _digest(out)
    if mode == "native" and not workload.expected:
        workload.expected = digest
    elif digest != workload.expected:
        raise RuntimeError(f"{mode} {workload.label}: output differs from the native run's")
    return seconds


# ---- printing ------------------------------------------------------------------


def print_table(workloads: list[Workload], modes: list[str], repeat: int) -> None:
    print(f"\n== median wall time of {repeat} runs (s), and the ratio to native / to qemu-user")
    head = f"{'workload':<28}{'mode':<11}{'median':>9}{'min..max':>16}{'x native':>10}"
    if "qemu-user" in modes:
        head += f"{'x qemu':>8}"
    print(head)
    for w in workloads:
        native = statistics.median(w.seconds["native"])
        qemu = statistics.median(w.seconds["qemu-user"]) if "qemu-user" in modes else None
        rows: list[tuple[str, list[float]]] = [(m, w.seconds[m]) for m in modes]
        rows.append(("exec run()", w.run_only))
        for index, (mode, runs) in enumerate(rows):
            med = statistics.median(runs)
            spread = f"{min(runs):.3f}..{max(runs):.3f}"
            line = f"{w.label if index == 0 else '':<28}{mode:<11}{med:>9.3f}{spread:>16}"
            line += f"{med / native:>10.2f}"
            if qemu is not None:
                line += f"{med / qemu:>8.2f}"
            print(line)
    print(
        "   exec CLI = `kvmbase exec` in a subprocess (Python start-up included); "
        "exec API = Process()\n   + run() + close() in this process; exec run() = "
        "run() alone (Process.host_seconds)"
    )


def print_statistics(workloads: list[Workload]) -> None:
    shown: dict[str, str] = {}  # the calls and counts of a printed table -> its workload
    for w in workloads:
        stats = w.statistics
        if stats is None:
            continue
        print(f"\n== system calls of one exec run: busybox {w.label}")
        profile = repr({name: row["count"] for name, row in stats["syscalls"].items()})
        if profile in shown:
            print(f"(the same calls and counts as {shown[profile]}: table left out)")
        else:
            shown[profile] = w.name
            print(w.stats_text)
        calls = stats["total_syscalls"]
        reads = stats["syscalls"].get("read", {}).get("count", 0)
        handler = sum(row["host_seconds"] for row in stats["syscalls"].values())
        native = statistics.median(w.seconds["native"])
        run_only = statistics.median(w.run_only)
        if reads:
            print(f"read: {reads} calls, {w.size / reads / 1024:.1f} KiB of input per call")
        print(
            f"Python handlers: {handler * 1e3:.1f} ms in all, {handler / calls * 1e6:.1f} us "
            f"per call; KVM_RUN {stats['host_seconds_in_guest']:.3f} s of the "
            f"{stats['host_seconds']:.3f} s run"
        )
        print(
            f"exec's extra time per system call, (median run() - median native) / calls: "
            f"{(run_only - native) / calls * 1e6:.1f} us"
        )


# ---- main ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", type=parse_size, default=256 * MiB,
        help="input of sha256sum and md5sum (default 256MiB)",
    )
    parser.add_argument(
        "--gzip-size", type=parse_size, default=32 * MiB,
        help="input of gzip -9 (default 32MiB)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--only", action="append", choices=("sha256sum", "md5sum", "gzip"),
        help="run only these workloads (repeatable)",
    )
    parser.add_argument("--no-qemu", action="store_true", help="leave QEMU user mode out")
    parser.add_argument(
        "--no-install", action="store_true", help="do not apt-get install qemu-user-static"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE,
        help=f"where the inputs and outputs go (default {DEFAULT_CACHE})",
    )
    args = parser.parse_args(argv)
    if not Path(BUSYBOX).exists():
        raise SystemExit(f"se_bench: no {BUSYBOX} (apt-get install busybox-static)")
    cache: Path = args.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    kvmbase = kvmbase_command()
    qemu = None if args.no_qemu else ensure_qemu(not args.no_install)
    modes = [m for m in MODES if m != "qemu-user" or qemu is not None]

    started = time.perf_counter()
    print(f"making the inputs in {cache} (once) ...", flush=True)
    big = random_file(cache, args.size)
    text = text_file(cache, args.gzip_size)
    chosen = set(args.only or ("sha256sum", "md5sum", "gzip"))
    workloads = [
        w
        for w in (
            Workload("sha256sum", ["sha256sum"], big, args.size),
            Workload("md5sum", ["md5sum"], big, args.size),
            Workload("gzip", ["gzip", "-9", "-c"], text, args.gzip_size),
        )
        if w.name in chosen
    ]
    for w in workloads:
        w.seconds = {m: [] for m in modes}

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, busybox "
        f"{BUSYBOX}, qemu {qemu or '-'}; {args.repeat} rounds",
        flush=True,
    )
    # warm-up, untimed: page in the binaries and the Python modules
    warm_ups: list[Callable[[], object]] = [
        lambda: subprocess.run([BUSYBOX, "true"], check=True),
        lambda: subprocess.run([kvmbase, "exec", BUSYBOX, "true"], check=True),
        lambda: run_api([BUSYBOX, "true"], cache / "out-warm-up", cache),
    ]
    if qemu is not None:
        warm_ups.append(lambda: subprocess.run([qemu, BUSYBOX, "true"], check=True))
    for warm in warm_ups:
        warm()
    for w in workloads:  # the native reference output, and the input in the page cache
        one_run("native", w, cache, kvmbase, qemu)
        w.seconds["native"].clear()

    for r in range(args.repeat):
        for w in workloads:
            shift = r % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                seconds = one_run(mode, w, cache, kvmbase, qemu)
                w.seconds[mode].append(seconds)
        done = ", ".join(
            f"{w.name} " + "/".join(f"{w.seconds[m][-1]:.2f}" for m in modes) for w in workloads
        )
        print(f"round {r + 1}: {done} s ({'/'.join(modes)})", flush=True)

    print_table(workloads, modes, args.repeat)
    print_statistics(workloads)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
