"""Exit-loop baselines: the C program and a bare Python loop, side by side.

``build()`` assembles ``guests/exit_loops.S`` into a flat image and compiles
``c/exit_loop.c`` into ``.build/``; ``run_c()`` runs the C program and returns
its figures; ``run_bare_python()`` drives the same port-IO and MMIO guests with
nothing but ``fcntl.ioctl`` on /dev/kvm, ``mmap`` and ``struct`` (the machine
layout is the one documented at the top of ``c/exit_loop.c``).

``python3 bench/baseline.py`` prints a table of every variant;
``python3 bench/baseline.py probe`` prints the privilege-switch probes.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BUILD_DIR = BENCH_DIR / ".build"
GUEST_SRC = BENCH_DIR / "guests" / "exit_loops.S"
C_SRC = BENCH_DIR / "c" / "exit_loop.c"
IMAGE = BUILD_DIR / "exit_loops.bin"
EXE = BUILD_DIR / "exit_loop"

Figures = dict[str, "int | float | str"]


def build(force: bool = False) -> Path:
    """Build the guest image and the C program if stale; return BUILD_DIR."""
    BUILD_DIR.mkdir(exist_ok=True)

    def stale(target: Path, source: Path) -> bool:
        return (force or not target.exists()
                or target.stat().st_mtime < source.stat().st_mtime)

    if stale(IMAGE, GUEST_SRC):
        obj = BUILD_DIR / "exit_loops.o"
        subprocess.run(["as", str(GUEST_SRC), "-o", str(obj)], check=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj),
                        str(IMAGE)], check=True)
    if stale(EXE, C_SRC):
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", str(EXE),
                        str(C_SRC)], check=True)
    return BUILD_DIR


def _parse(line: str) -> Figures:
    """Parse ``key=value ...``; numbers become int or float."""
    out: Figures = {}
    for field in line.split():
        key, _, value = field.partition("=")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def run_c(kind: str, cpl: str, n: int) -> Figures:
    """Run ``exit_loop KIND CPL N`` (CPL: cpl0, cpl3 or native); parse it."""
    build()
    res = subprocess.run([str(EXE), "-i", str(IMAGE), kind, cpl, str(n)],
                         check=True, capture_output=True, text=True)
    return _parse(res.stdout.strip().splitlines()[-1])


def run_probe() -> str:
    """Run the privilege-switch probes of the C program; return its report."""
    build()
    return subprocess.run([str(EXE), "-i", str(IMAGE), "probe"], check=True,
                          capture_output=True, text=True).stdout


# ---- bare Python KVM ------------------------------------------------------

def _ioc(direction: int, nr: int, size: int) -> int:
    return direction << 30 | size << 16 | 0xAE << 8 | nr


KVM_CREATE_VM = _ioc(0, 0x01, 0)
KVM_GET_VCPU_MMAP_SIZE = _ioc(0, 0x04, 0)
KVM_GET_SUPPORTED_CPUID = _ioc(3, 0x05, 8)
KVM_CREATE_VCPU = _ioc(0, 0x41, 0)
KVM_SET_USER_MEMORY_REGION = _ioc(1, 0x46, 32)
KVM_RUN = _ioc(0, 0x80, 0)
KVM_SET_REGS = _ioc(1, 0x82, 144)
KVM_GET_SREGS = _ioc(2, 0x83, 312)
KVM_SET_SREGS = _ioc(1, 0x84, 312)
KVM_SET_CPUID2 = _ioc(1, 0x90, 8)

KVM_EXIT_IO = 2
KVM_EXIT_MMIO = 6

RAM_SIZE = 16 << 20
IMAGE_ADDR = 0x100000
USER_STACK = 0x80000
TSS_ADDR, TSS_LIMIT = 0x6000, 0x2068
ENTRY = {"pio": 0x00, "mmio": 0x08}
GDT = (0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x00CFFB000000FFFF,
       0x00CFF3000000FFFF, 0x00AFFB000000FFFF, 0x00CFF3000000FFFF,
       0x00008B0000000000 | TSS_ADDR << 16 | TSS_LIMIT, 0)
SEGMENT = struct.Struct("<QIH10B")      # struct kvm_segment (24 bytes)


def build_layout(ram: mmap.mmap, image: bytes) -> None:
    """Write page tables, GDT, TSS and the image (IDT left empty)."""
    pds = (0x3000, 0x9000, 0xA000, 0xB000)
    struct.pack_into("<Q", ram, 0x1000, 0x2000 | 7)
    for g, pd in enumerate(pds):
        struct.pack_into("<Q", ram, 0x2000 + 8 * g, pd | 7)
        struct.pack_into("<512Q", ram, pd,
                         *((g << 30) + (i << 21) | 0x87 for i in range(512)))
    struct.pack_into(f"<{len(GDT)}Q", ram, 0x4000, *GDT)
    struct.pack_into("<Q", ram, TSS_ADDR + 4, 0x90000)
    ram[TSS_ADDR + 0x66] = 0x68
    ram[TSS_ADDR + TSS_LIMIT] = 0xFF
    ram[IMAGE_ADDR:IMAGE_ADDR + len(image)] = image


def _segment(selector: int, code: bool, present: int = 1) -> bytes:
    # base, limit, selector, type, present, dpl, db, s, l, g, avl,
    # unusable, padding
    return SEGMENT.pack(0, 0xFFFFFFFF, selector, 11 if code else 3, present,
                        selector & 3, 0 if code else 1, 1, int(code), 1,
                        0, 0, 0)


class BareVm:
    """A one-vCPU VM in 64-bit mode at CPL0 or CPL3, nothing else."""

    def __init__(self, image: bytes, cpl: int, entry: int) -> None:
        self.kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        self.vm = fcntl.ioctl(self.kvm, KVM_CREATE_VM)
        self.ram = mmap.mmap(-1, RAM_SIZE, mmap.MAP_PRIVATE
                             | mmap.MAP_ANONYMOUS)
        view = ctypes.c_char.from_buffer(self.ram)
        addr = ctypes.addressof(view)
        del view
        fcntl.ioctl(self.vm, KVM_SET_USER_MEMORY_REGION,
                    struct.pack("<IIQQQ", 0, 0, 0, RAM_SIZE, addr))
        self.vcpu = fcntl.ioctl(self.vm, KVM_CREATE_VCPU, 0)
        size = fcntl.ioctl(self.kvm, KVM_GET_VCPU_MMAP_SIZE)
        self.run = mmap.mmap(self.vcpu, size, mmap.MAP_SHARED)
        self._set_cpuid()
        build_layout(self.ram, image)
        self._set_sregs(cpl)
        regs = [0] * 18                  # rax..r15, rip, rflags
        regs[7] = USER_STACK             # rsp
        regs[16] = IMAGE_ADDR + entry
        regs[17] = 0x3002 if cpl else 0x2
        fcntl.ioctl(self.vcpu, KVM_SET_REGS, struct.pack("<18Q", *regs))

    def _set_cpuid(self) -> None:
        nent = 256
        buf = bytearray(struct.pack("<II", nent, 0) + bytes(40 * nent))
        fcntl.ioctl(self.kvm, KVM_GET_SUPPORTED_CPUID, buf)
        fcntl.ioctl(self.vcpu, KVM_SET_CPUID2, buf)

    def _set_sregs(self, cpl: int) -> None:
        sregs = bytearray(312)
        fcntl.ioctl(self.vcpu, KVM_GET_SREGS, sregs)
        code = _segment(0x2B if cpl else 0x08, True)
        data = _segment(0x23 if cpl else 0x10, False)
        tr = SEGMENT.pack(TSS_ADDR, TSS_LIMIT, 0x38, 11, 1, 0, 0, 0, 0, 0,
                          0, 0, 0)
        ldt = SEGMENT.pack(0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0)
        # cs ds es fs gs ss tr ldt
        sregs[0:192] = code + data * 5 + tr + ldt
        struct.pack_into("<QH6xQH6x", sregs, 192, 0x4000, 0x47, 0x5000, 0xFFF)
        # cr0 cr2 cr3 cr4 cr8 efer (apic_base and interrupt bitmap kept)
        struct.pack_into("<6Q", sregs, 224, 0x80050033, 0, 0x1000, 0x620, 0,
                         0x501)
        fcntl.ioctl(self.vcpu, KVM_SET_SREGS, bytes(sregs))

    def close(self) -> None:
        self.run.close()
        self.ram.close()
        for fd in (self.vcpu, self.vm, self.kvm):
            os.close(fd)


def run_bare_python(kind: str, cpl: str, n: int) -> Figures:
    """Port-IO or MMIO loop driven from Python: N exits after one warm-up."""
    build()
    level = 3 if cpl == "cpl3" else 0
    vm = BareVm(IMAGE.read_bytes(), level, ENTRY[kind])
    expected = KVM_EXIT_MMIO if kind == "mmio" else KVM_EXIT_IO
    ioctl, fd, run = fcntl.ioctl, vm.vcpu, vm.run
    try:
        ioctl(fd, KVM_RUN)                              # warm-up exit
        t0 = time.perf_counter()
        for _ in range(n):
            ioctl(fd, KVM_RUN)                          # no arg: cheapest
            if run[8] != expected:                      # exit_reason, low byte
                raise RuntimeError(f"unexpected exit reason {run[8]}")
        seconds = time.perf_counter() - t0
        if kind == "mmio":                              # kvm_run.mmio.data
            counter = struct.unpack_from("<I", run, 40)[0]
        else:                                           # io.data_offset
            counter = struct.unpack_from(
                "<I", run, struct.unpack_from("<Q", run, 40)[0])[0]
        if counter != n + 1:
            raise RuntimeError(f"counter {counter}, expected {n + 1}")
    finally:
        vm.close()
    return {"kind": kind, "cpl": level, "exits": n, "seconds": seconds,
            "us_per_exit": seconds * 1e6 / n}


# ---- table ----------------------------------------------------------------

def _median(samples: list[Figures], key: str) -> float:
    return statistics.median(float(s[key]) for s in samples)


def main(repeat: int = 3) -> None:
    """Print C vs bare Python (exit loops) and CPL3 vs native (compute)."""
    build()
    counts = {"cpl0": 20000, "cpl3": 10000}
    print(f"exit loops (median of {repeat}; C checks every exit's port or "
          "address, Python its exit reason)")
    print(f"{'variant':<11}{'C us/exit':>10}{'C exits/s':>11}"
          f"{'Py us/exit':>12}{'Py exits/s':>12}{'Py/C':>7}")
    for kind in ("pio", "mmio"):
        for cpl in ("cpl0", "cpl3"):
            c_runs, py_runs = [], []
            for _ in range(repeat):                     # interleave C and Py
                c_runs.append(run_c(kind, cpl, counts[cpl]))
                py_runs.append(run_bare_python(kind, cpl, counts[cpl]))
            c_us = _median(c_runs, "us_per_exit")
            py_us = _median(py_runs, "us_per_exit")
            print(f"{kind + ' ' + cpl:<11}{c_us:>10.2f}{1e6 / c_us:>11.0f}"
                  f"{py_us:>12.2f}{1e6 / py_us:>12.0f}{py_us / c_us:>7.2f}")

    print("\ncompute loop (xorshift64, same code bytes; native = image mapped "
          "RWX on the host)")
    print(f"{'variant':<16}{'iters':>11}{'ns/iter':>10}{'x native':>10}"
          f"  result")
    iters = {"native": 200_000_000, "cpl3": 200_000_000, "cpl0": 100_000}
    native = 0.0
    for cpl in ("native", "cpl3", "cpl0"):
        runs = [run_c("compute", cpl, iters[cpl]) for _ in range(repeat)]
        ns = _median(runs, "ns_per_iter")
        native = native or ns
        print(f"{'compute ' + cpl:<16}{iters[cpl]:>11}{ns:>10.3f}"
              f"{ns / native:>10.2f}  {runs[0]['result']}")


if __name__ == "__main__":
    if sys.argv[1:] == ["probe"]:
        print(run_probe(), end="")
    else:
        main()
