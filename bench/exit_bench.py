"""Exit-loop benchmark: C vs bare Python vs the kvmbase framework, in one run.

    .venv/bin/python bench/exit_bench.py [--exits N] [--repeats R]

Prints three tables (bench/README.md explains every figure):

1. Port-IO and MMIO exit loops at CPL0 and CPL3: the C program
   (``c/exit_loop.c``), the bare Python driver (``baseline.run_bare_python``:
   ``fcntl.ioctl`` on /dev/kvm, nothing else) and the full framework path
   (``kvmbase.Machine`` -> ``BaseKvmCPU.tick`` -> ``kvm_run`` ->
   ``handle_kvm_exit`` -> bus -> a ``Device``), us per exit, exits per second,
   framework/C and bare/C.
2. The ``KVM_RUN`` call variants on the real exit loop, in the bare driver:
   ``fcntl.ioctl`` vs cffi ABI mode ``libc.ioctl`` (``kvmbase.abi``) vs a cffi
   API-mode out-of-line module (``kvmrun_api``, compiled into ``.build``),
   each with the kvm_run fields read the matching way.
3. The compute loop at CPL3 under the framework against the same code run
   natively (and at CPL3 from C).

Every guest enters CPL3 the same way: the thread context (framework) or
``KVM_SET_SREGS`` (C, bare Python) is set to CS 0x2b / SS 0x23 with DPL 3 and
RFLAGS 0x3002 before the first entry; no CPL0 prologue runs.  Runs are
interleaved (C, bare, framework for one variant, then the next variant) and
the figures are medians over the repeats, after an untimed warm-up round.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import statistics
import struct
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import baseline  # noqa: E402
import kvmrun_api  # noqa: E402

from kvmbase import Machine  # noqa: E402
from kvmbase.sim.bus import Device  # noqa: E402

IMAGE_ADDR = 0x100000
MMIO_ADDR = 0xD0000000
PORT_PIO, PORT_RESULT, PORT_MARK = 0xE0, 0xE1, 0xE4
ENTRY = {"pio": 0x00, "mmio": 0x08, "compute_marked": 0x70}
SEED = 0x9E3779B97F4A7C15
KINDS = ("pio", "mmio")
CPLS = ("cpl0", "cpl3")
#: framework / C targets of the issue
TARGET_EXIT = {"cpl0": 1.5, "cpl3": 1.1}
TARGET_COMPUTE = 1.03

warnings.filterwarnings("ignore", message=".*no guest cycle counter.*")


# ---- the framework path ----------------------------------------------------


class CountingDevice(Device):
    """Counts writes; ends the run when the count reaches ``target``."""

    def __init__(self, name: str, machine: Machine) -> None:
        super().__init__(name)
        self.system = machine.system
        self.count = 0
        self.target = 0
        self.last = -1
        self.offsets: set[int] = set()

    def write(self, offset: int, size: int, value: int) -> None:
        self.count += 1
        self.last = value
        self.offsets.add(offset)
        if self.count >= self.target:
            self.system.exit_simulation("done")


def set_cpl3(machine: Machine) -> None:
    """Put the boot thread at CPL3, as ``vcpu_start`` does in the C program."""
    from kvm_x86.thread_context import Segment

    tc = machine.cpu.thread
    for name in ("cs", "ds", "es", "fs", "gs", "ss"):
        code = name == "cs"
        tc.segments[name] = Segment(
            base=0,
            limit=0xFFFFFFFF,
            selector=0x2B if code else 0x23,
            type=11 if code else 3,
            present=1,
            dpl=3,
            db=0 if code else 1,
            s=1,
            l=int(code),
            g=1,
        )
    tc.regs["rflags"] = 0x3002  # IOPL 3 (PVM drops it; TSS bitmap)
    tc.mark_dirty()


def make_machine(entry: str, cpl: str) -> Machine:
    machine = Machine.from_data(
        {
            "arch": "x86",
            "vm": {"ram_size": "16MiB"},
            "devices": [],
            "image": {
                "path": str(baseline.IMAGE),
                "load_address": IMAGE_ADDR,
                "entry": IMAGE_ADDR + ENTRY[entry],
            },
        },
        uart_output="none",
    )
    if cpl == "cpl3":
        set_cpl3(machine)
    return machine


def run_framework(kind: str, cpl: str, n: int, warmup: int = 200) -> float:
    """N exits of the pio or mmio loop through Machine.run(); us per exit."""
    machine = make_machine(kind, cpl)
    try:
        device = CountingDevice("sink", machine)
        if kind == "pio":
            machine.add_device(device, machine.port_address(PORT_PIO), 8)
        else:
            machine.add_device(device, MMIO_ADDR, 0x1000)
        device.target = warmup  # start-up and warm-up exits
        machine.run()
        device.target = warmup + n
        t0 = time.perf_counter()
        result = machine.run()
        seconds = time.perf_counter() - t0
        if (
            result.cause != "done"
            or device.count != warmup + n
            or device.last != warmup + n
            or device.offsets != {0}
        ):
            raise RuntimeError(
                f"framework {kind} {cpl}: cause {result.cause!r}, count "
                f"{device.count}, last value {device.last}, offsets "
                f"{device.offsets}; expected {warmup + n}"
            )
    finally:
        machine.close()
    return seconds * 1e6 / n


def run_framework_compute(iters: int) -> tuple[float, int]:
    """The compute loop at CPL3 via Machine.run(); (ns per iteration, RAX).

    The guest first makes one exit at port 0xE4 (entry compute_marked): the
    first run stops there, after the framework's start-up; the timed run is
    the compute loop and its one result exit (port 0xE1), as in the C program.
    """
    machine = make_machine("compute_marked", "cpl3")
    try:
        tc = machine.cpu.thread
        tc.regs["rdi"] = iters
        tc.regs["rsi"] = SEED
        tc.mark_dirty()
        device = CountingDevice("ports", machine)
        machine.add_device(device, machine.port_address(PORT_PIO), 8)
        device.target = 1
        machine.run()
        device.target = 2
        t0 = time.perf_counter()
        result = machine.run()
        seconds = time.perf_counter() - t0
        rax = machine.cpu.read_register("rax")
        offsets = {PORT_MARK - PORT_PIO, PORT_RESULT - PORT_PIO}
        if result.cause != "done" or device.count != 2 or device.offsets != offsets:
            raise RuntimeError(
                f"framework compute: cause {result.cause!r}, "
                f"{device.count} exits at {device.offsets}"
            )
    finally:
        machine.close()
    return seconds * 1e9 / iters, rax


# ---- KVM_RUN call variants in the bare driver --------------------------------

_IO_HEADER = struct.Struct("<8xI20xBBHIQ")  # exit_reason .. io.data_offset
_MMIO_HEADER = struct.Struct("<8xI20xQI")  # exit_reason, phys_addr, data
_U32 = struct.Struct("<I")
KVM_RUN = baseline.KVM_RUN
EXIT_IO, EXIT_MMIO = baseline.KVM_EXIT_IO, baseline.KVM_EXIT_MMIO

#: (name, call, reads): what each variant does on every exit
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("fcntl, exit_reason byte only", "fcntl", "byte"),
    ("fcntl + struct on the mmap", "fcntl", "struct"),
    ("fcntl + ABI cdata (framework <3.14)", "fcntl", "abi"),
    ("fcntl + API cdata", "fcntl", "api"),
    ("ABI libc.ioctl, cast per call + ABI cdata (framework >=3.14)", "abi_cast", "abi"),
    ("ABI libc.ioctl, cast hoisted + ABI cdata", "abi", "abi"),
    ("ABI ioctl declared non-variadic + ABI cdata", "abi_fixed", "abi"),
    ("API run(fd) + ABI cdata", "api", "abi"),
    ("API run(fd) + API cdata", "api", "api"),
    ("API run_reason(fd, run) + API cdata", "api_reason", "api"),
)


_FIXED: list[Any] = []


def _fixed_libc() -> Any:
    """libc's ioctl in cffi ABI mode through a non-variadic prototype
    (``int ioctl(int, unsigned long, unsigned long)``): libffi's plain call
    path instead of its variadic one.  Works for integer arguments on
    x86-64 SysV; strictly, calling a variadic function so is undefined."""
    if not _FIXED:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef("int ioctl(int fd, unsigned long request, unsigned long arg);")
        _FIXED.append(ffi.dlopen(None))
    return _FIXED[0]


class VariantDriver:
    """One bare VM in an endless pio or mmio loop, driven by any variant."""

    def __init__(self, kind: str, cpl: str, api: Any) -> None:
        from kvmbase import abi

        self.kind = kind
        self.vm = baseline.BareVm(
            baseline.IMAGE.read_bytes(), 3 if cpl == "cpl3" else 0, ENTRY[kind]
        )
        self.api = api
        self.abi_run = abi.ffi.from_buffer("struct kvm_run *", self.vm.run)
        self.api_run = api.ffi.from_buffer("struct kvm_run *", self.vm.run)
        fcntl.ioctl(self.vm.vcpu, KVM_RUN)  # first exit
        self.counter = 1

    def close(self) -> None:
        from kvmbase import abi

        abi.ffi.release(self.abi_run)
        self.api.ffi.release(self.api_run)
        self.vm.close()

    def loop(self, call: str, reads: str, n: int) -> float:
        """N exits with the given call and read style; us per exit."""
        from kvmbase.abi import ffi as abi_ffi
        from kvmbase.abi import libc

        fd, buf = self.vm.vcpu, self.vm.run
        mmio = self.kind == "mmio"
        expected = EXIT_MMIO if mmio else EXIT_IO
        target = MMIO_ADDR if mmio else PORT_PIO
        ioctl = fcntl.ioctl
        run_api = self.api.lib.run
        run_reason = self.api.lib.run_reason
        zero = abi_ffi.cast("unsigned long", 0)
        if call == "abi_fixed":  # the "abi" loop, other prototype
            call, libc, zero = "abi", _fixed_libc(), 0
        cast = abi_ffi.cast
        ulong = "unsigned long"
        cd_run = self.abi_run if reads == "abi" else self.api_run
        if reads in ("abi", "api"):
            sub = (abi_ffi if reads == "abi" else self.api.ffi).addressof(
                cd_run, "mmio" if mmio else "io"
            )
        unpack_u32 = _U32.unpack_from
        header = (_MMIO_HEADER if mmio else _IO_HEADER).unpack_from

        # Each variant's loop is written out in full (no helper call per
        # exit): the body is what a tuned exit loop of that style contains.
        last = 0
        t0 = time.perf_counter()
        if reads == "byte":
            for _ in range(n):
                ioctl(fd, KVM_RUN)
                if buf[8] != expected:
                    raise RuntimeError(f"exit reason {buf[8]}")
            last = self._value_now()
        elif reads == "struct":
            if mmio:
                for _ in range(n):
                    ioctl(fd, KVM_RUN)
                    reason, address, last = header(buf)
                    if reason != expected or address != target:
                        raise RuntimeError(f"exit {reason} at {address:#x}")
            else:
                for _ in range(n):
                    ioctl(fd, KVM_RUN)
                    reason, _d, _s, port, _c, offset = header(buf)
                    if reason != expected or port != target:
                        raise RuntimeError(f"exit {reason} at port {port:#x}")
                    last = unpack_u32(buf, offset)[0]
        else:
            last = self._cdata_loop(
                call,
                mmio,
                n,
                fd,
                buf,
                cd_run,
                sub,
                expected,
                target,
                ioctl,
                libc,
                zero,
                cast,
                ulong,
                run_api,
                run_reason,
            )
        seconds = time.perf_counter() - t0
        self.counter += n
        if last != self.counter:
            raise RuntimeError(f"{call}/{reads}: counter {last}, expected {self.counter}")
        return seconds * 1e6 / n

    def _value_now(self) -> int:
        buf = self.vm.run
        if self.kind == "mmio":
            return _U32.unpack_from(buf, 40)[0]
        return _U32.unpack_from(buf, _U32.unpack_from(buf, 40)[0])[0]

    @staticmethod
    def _cdata_loop(
        call: str,
        mmio: bool,
        n: int,
        fd: int,
        buf: Any,
        run: Any,
        sub: Any,
        expected: int,
        target: int,
        ioctl: Callable[..., Any],
        libc: Any,
        zero: Any,
        cast: Callable[..., Any],
        ulong: str,
        run_api: Callable[[int], int],
        run_reason: Callable[[int, Any], int],
    ) -> int:
        unpack_u32 = _U32.unpack_from
        last = 0
        if mmio:
            # the data sits at a fixed offset: read it like the framework
            if call == "fcntl":
                for _ in range(n):
                    ioctl(fd, KVM_RUN)
                    if run.exit_reason != expected or sub.phys_addr != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, 40)[0]
            elif call == "abi_cast":
                for _ in range(n):
                    if libc.ioctl(fd, KVM_RUN, cast(ulong, 0)) < 0:
                        raise OSError("KVM_RUN")
                    if run.exit_reason != expected or sub.phys_addr != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, 40)[0]
            elif call == "abi":
                for _ in range(n):
                    if libc.ioctl(fd, KVM_RUN, zero) < 0:
                        raise OSError("KVM_RUN")
                    if run.exit_reason != expected or sub.phys_addr != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, 40)[0]
            elif call == "api":
                for _ in range(n):
                    if run_api(fd) < 0:
                        raise OSError("KVM_RUN")
                    if run.exit_reason != expected or sub.phys_addr != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, 40)[0]
            else:  # api_reason
                for _ in range(n):
                    if run_reason(fd, run) != expected or sub.phys_addr != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, 40)[0]
        else:
            if call == "fcntl":
                for _ in range(n):
                    ioctl(fd, KVM_RUN)
                    if run.exit_reason != expected or sub.port != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, sub.data_offset)[0]
            elif call == "abi_cast":
                for _ in range(n):
                    if libc.ioctl(fd, KVM_RUN, cast(ulong, 0)) < 0:
                        raise OSError("KVM_RUN")
                    if run.exit_reason != expected or sub.port != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, sub.data_offset)[0]
            elif call == "abi":
                for _ in range(n):
                    if libc.ioctl(fd, KVM_RUN, zero) < 0:
                        raise OSError("KVM_RUN")
                    if run.exit_reason != expected or sub.port != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, sub.data_offset)[0]
            elif call == "api":
                for _ in range(n):
                    if run_api(fd) < 0:
                        raise OSError("KVM_RUN")
                    if run.exit_reason != expected or sub.port != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, sub.data_offset)[0]
            else:  # api_reason
                for _ in range(n):
                    if run_reason(fd, run) != expected or sub.port != target:
                        raise RuntimeError("unexpected exit")
                    last = unpack_u32(buf, sub.data_offset)[0]
        return last


# ---- running and printing ----------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _ok(ratio: float, target: float) -> str:
    return "ok" if ratio <= target else "MISS"


def exit_loops(n: int, repeats: int) -> dict[tuple[str, str], dict[str, list[float]]]:
    samples: dict[tuple[str, str], dict[str, list[float]]] = {
        (k, c): {"c": [], "bare": [], "fw": []} for c in CPLS for k in KINDS
    }
    # warm-up round, untimed: pages in binaries, KVM module paths, caches
    for kind in KINDS:
        for cpl in CPLS:
            baseline.run_c(kind, cpl, max(n // 10, 100))
            baseline.run_bare_python(kind, cpl, max(n // 10, 100))
            run_framework(kind, cpl, max(n // 10, 100))
    for r in range(repeats):
        for kind in KINDS:
            for cpl in CPLS:
                s = samples[(kind, cpl)]
                runners: list[tuple[str, Callable[[], float]]] = [
                    ("c", lambda k=kind, c=cpl: float(baseline.run_c(k, c, n)["us_per_exit"])),
                    (
                        "bare",
                        lambda k=kind, c=cpl: float(
                            baseline.run_bare_python(k, c, n)["us_per_exit"]
                        ),
                    ),
                    ("fw", lambda k=kind, c=cpl: run_framework(k, c, n)),
                ]
                shift = r % 3  # rotate who goes first
                for key, fn in runners[shift:] + runners[:shift]:
                    s[key].append(fn())
    return samples


def print_exit_table(
    samples: dict[tuple[str, str], dict[str, list[float]]], n: int, repeats: int
) -> None:
    print(
        f"== exit loops: {n} exits per run, median of {repeats} runs "
        "(us/exit; exits/s = 1e6 / median)"
    )
    print(
        f"{'variant':<10}{'C us':>8}{'bare us':>9}{'fw us':>8}"
        f"{'C /s':>9}{'bare /s':>9}{'fw /s':>9}"
        f"{'fw/C':>7}{'bare/C':>8}{'fw/bare':>9}  target fw/C"
    )
    for cpl in CPLS:
        for kind in KINDS:
            s = samples[(kind, cpl)]
            c, bare, fw = (_median(s[k]) for k in ("c", "bare", "fw"))
            target = TARGET_EXIT[cpl]
            print(
                f"{kind + ' ' + cpl:<10}{c:>8.2f}{bare:>9.2f}{fw:>8.2f}"
                f"{1e6 / c:>9.0f}{1e6 / bare:>9.0f}{1e6 / fw:>9.0f}"
                f"{fw / c:>7.2f}{bare / c:>8.2f}{fw / bare:>9.2f}"
                f"  <= {target:.2f} {_ok(fw / c, target)}"
            )
    print(
        "   spread (min..max us/exit) of C / bare / fw, and the median of "
        "the per-repeat ratios (runs made back to back)"
    )
    print(f"   {'':<10}{'C':^16}{'bare':^16}{'fw':^16}{'fw/C':>7}{'bare/C':>8}")
    for cpl in CPLS:
        for kind in KINDS:
            s = samples[(kind, cpl)]
            spread = "".join(f"{min(s[k]):7.2f}..{max(s[k]):<7.2f}" for k in ("c", "bare", "fw"))
            fw_c = _median([f / c for f, c in zip(s["fw"], s["c"], strict=True)])
            bare_c = _median([b / c for b, c in zip(s["bare"], s["c"], strict=True)])
            print(f"   {kind + ' ' + cpl:<10}{spread}{fw_c:>7.2f}{bare_c:>8.2f}")


def call_variants(
    n: int, repeats: int, cpls: tuple[str, ...]
) -> dict[tuple[str, str], list[list[float]]]:
    api = kvmrun_api.load()
    results: dict[tuple[str, str], list[list[float]]] = {}
    for cpl in cpls:
        for kind in KINDS:
            driver = VariantDriver(kind, cpl, api)
            try:
                per = [[] for _ in VARIANTS]
                for _, call, reads in VARIANTS:  # warm-up
                    driver.loop(call, reads, max(n // 10, 100))
                order = list(range(len(VARIANTS)))
                for r in range(repeats):
                    shift = r % len(order)
                    for i in order[shift:] + order[:shift]:
                        _, call, reads = VARIANTS[i]
                        per[i].append(driver.loop(call, reads, n))
                results[(kind, cpl)] = per
            finally:
                driver.close()
    return results


def print_variants(results: dict[tuple[str, str], list[list[float]]], n: int, repeats: int) -> None:
    keys = list(results)
    print(
        f"\n== KVM_RUN call variants in the bare driver: {n} exits per run, "
        f"{repeats} runs each, interleaved on one VM per column"
    )
    print(
        "   every variant checks exit_reason and the port/address and reads "
        "the data value, except the first (exit_reason only)"
    )
    print(
        "   median us/exit [min]; delta = median - median of the framework's "
        "choice (fcntl + ABI cdata)"
    )
    head = "".join(f"{k + ' ' + c:>24}" for k, c in keys)
    print(f"{'variant':<60}{head}")
    ref = {key: _median(results[key][2]) for key in keys}
    for i, (name, _, _) in enumerate(VARIANTS):
        cells = ""
        for key in keys:
            runs = results[key][i]
            med = _median(runs)
            cells += f"{med:>9.2f} [{min(runs):5.2f}] {med - ref[key]:+6.2f}"
        print(f"{name:<60}{cells}")


def compute(iters: int, repeats: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"native": [], "c": [], "fw": []}
    results: dict[str, set[int]] = {"native": set(), "c": set(), "fw": set()}
    small = max(iters // 20, 1000)
    baseline.run_c("compute", "native", small)  # warm-up
    baseline.run_c("compute", "cpl3", small)
    run_framework_compute(small)
    for _ in range(repeats):
        for key, cpl in (("native", "native"), ("c", "cpl3")):
            out = baseline.run_c("compute", cpl, iters)
            samples[key].append(float(out["ns_per_iter"]))
            results[key].add(int(str(out["result"]), 16))
        ns, rax = run_framework_compute(iters)
        samples["fw"].append(ns)
        results["fw"].add(rax)
    values = set().union(*results.values())
    if len(values) != 1:
        raise RuntimeError(f"compute results differ: {results}")
    return samples


def print_compute(samples: dict[str, list[float]], iters: int, repeats: int) -> None:
    native = _median(samples["native"])
    print(
        f"\n== compute loop (xorshift64, {iters} iterations, median of "
        f"{repeats}; same code bytes everywhere)"
    )
    print(f"{'variant':<26}{'ns/iter':>9}{'x native':>10}{'min..max ns/iter':>20}")
    for key, name in (
        ("native", "native (C, host)"),
        ("c", "CPL3 guest, C"),
        ("fw", "CPL3 guest, framework"),
    ):
        med = _median(samples[key])
        print(
            f"{name:<26}{med:>9.3f}{med / native:>10.3f}"
            f"{min(samples[key]):>11.3f}..{max(samples[key]):.3f}"
        )
    ratio = _median(samples["fw"]) / native
    print(
        f"framework / native = {ratio:.3f} (target <= {TARGET_COMPUTE}: "
        f"{_ok(ratio, TARGET_COMPUTE)})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--exits", type=int, default=20000, help="exits per timed run (default 20000)"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure (default 7)")
    parser.add_argument(
        "--iters", type=int, default=200_000_000, help="compute-loop iterations (default 2e8)"
    )
    parser.add_argument(
        "--variant-cpl3", action="store_true", help="also run the call variants at CPL3"
    )
    parser.add_argument(
        "--only",
        choices=("exits", "variants", "compute"),
        action="append",
        help="run only these parts",
    )
    args = parser.parse_args(argv)
    parts = set(args.only or ("exits", "variants", "compute"))

    baseline.build()
    kvmrun_api.build()
    print(
        f"python {sys.version.split()[0]}, {baseline.EXE.name} (gcc -O2); "
        f"C and bare Python time their loop, framework times Machine.run()"
    )
    started = time.perf_counter()
    gc.collect()
    if "exits" in parts:
        print_exit_table(exit_loops(args.exits, args.repeats), args.exits, args.repeats)
    if "variants" in parts:
        cpls = ("cpl0", "cpl3") if args.variant_cpl3 else ("cpl0",)
        print_variants(call_variants(args.exits, args.repeats, cpls), args.exits, args.repeats)
    if "compute" in parts:
        print_compute(compute(args.iters, args.repeats), args.iters, args.repeats)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
