"""What the framework's Python side costs per exit, free of the host's noise.

    .venv/bin/python bench/profile_exit_path.py [--kind pio|mmio] [--exits N] [--profile]

After a few real exits of the CPL0 loop, ``KVM_RUN`` is replaced by a no-op,
so kvm_run keeps holding the last real exit and every "exit" is served again
through the whole path (tick, kvm_run, dispatch, bus, device).  That prints
microseconds per exit of pure Python; ``--profile`` adds a cProfile table
(read it as shares: cProfile inflates call-heavy code).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exit_bench

import kvmbase.cpu as kvmbase_cpu


def dry_run(kind: str, exits: int, profile: bool) -> float:
    machine = exit_bench.make_machine(kind, "cpl0")
    device = exit_bench.CountingDevice("sink", machine)
    if kind == "pio":
        machine.add_device(device, machine.port_address(exit_bench.PORT_PIO), 8)
    else:
        machine.add_device(device, exit_bench.MMIO_ADDR, 0x1000)
    real_ioctl = kvmbase_cpu._fcntl_ioctl
    try:
        device.target = 5
        machine.run()
        kvmbase_cpu._fcntl_ioctl = lambda fd, request: 0
        device.target = device.count + exits
        started = time.perf_counter()
        if profile:
            profiler = cProfile.Profile()
            profiler.runcall(machine.run)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        else:
            machine.run()
        return (time.perf_counter() - started) / exits * 1e6
    finally:
        kvmbase_cpu._fcntl_ioctl = real_ioctl
        machine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("pio", "mmio"), default="pio")
    parser.add_argument("--exits", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    best = min(dry_run(args.kind, args.exits, False) for _ in range(3))
    print(f"{args.kind}: {best:.2f} us of Python per exit (best of 3, KVM_RUN a no-op)")
    if args.profile:
        dry_run(args.kind, args.exits // 2, True)


if __name__ == "__main__":
    main()
