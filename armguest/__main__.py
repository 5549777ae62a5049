"""``python -m armguest``: build, boot and run the in-guest tests from the command line.

python -m armguest prepare            host tools, kernel, base image (cached)
python -m armguest test [FOLDER...]   boot once, run pytest inside, print results
python -m armguest headers            the arm64 kernel headers' compiler flags
python -m armguest clean              remove the cache
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter

from armguest.debs import arm64_linux_headers
from armguest.errors import HarnessError, HostLacksError
from armguest.paths import cache_dir
from armguest.runner import inner_test_folders, prepare, run_tests


def _test(args: argparse.Namespace) -> int:
    run = run_tests(args.folders or None, args.pytest_args, timeout=args.timeout)
    if args.json:
        json.dump(
            {"status": run.status, "timings": run.timings, "results": run.results},
            sys.stdout,
            indent=2,
        )
        print()
        return run.status or 0
    if args.console or run.problem:
        print(run.console)
    counts = Counter(test["outcome"] for test in run.tests)
    for test in run.tests:
        if args.verbose or test["outcome"] not in ("passed",):
            reason = f"  ({test['reason']})" if test["reason"] else ""
            print(f"{test['outcome'].upper():8} {test['nodeid']}{reason}")
        if test["outcome"] in ("failed", "error") and not args.console:
            print("    " + test["longrepr"].replace("\n", "\n    "))
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.timings.items())
    print(f"in the arm64 guest: {summary or 'no test'} (exit {run.status}); {timings}")
    if run.problem:
        print(f"armguest: the run did not end normally: {run.problem}", file=sys.stderr)
        return 2
    return run.status or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m armguest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="install host tools, fetch the kernel, build the base")
    test = commands.add_parser("test", help="boot once and run the in-guest tests")
    test.add_argument(
        "folders",
        nargs="*",
        help=f"repo-relative test folders (default: {' '.join(inner_test_folders())})",
    )
    test.add_argument(
        "--pytest-arg",
        dest="pytest_args",
        action="append",
        default=[],
        help="an extra argument for the in-guest pytest (repeatable)",
    )
    test.add_argument("--timeout", type=float, help="seconds before the boot is abandoned")
    test.add_argument("--json", action="store_true", help="print the results as JSON")
    test.add_argument("--console", action="store_true", help="print the guest's console")
    test.add_argument("-v", "--verbose", action="store_true", help="list passed tests too")
    commands.add_parser("headers", help="print -I flags for Debian's arm64 kernel headers")
    commands.add_parser("clean", help="remove the cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            prepared = prepare()
            print(f"kernel {prepared.kernel.image}")
            print(f"base   {prepared.base.cpio} ({prepared.base.cpio.stat().st_size >> 20} MiB)")
            print(f"ready in {prepared.seconds:.1f} s")
            return 0
        if args.command == "test":
            return _test(args)
        if args.command == "headers":
            print(" ".join(arm64_linux_headers().cflags()))
            return 0
        if args.command == "clean":
            shutil.rmtree(cache_dir())
            return 0
    except HostLacksError as exc:
        print(f"armguest: this host lacks {exc}", file=sys.stderr)
        return 77
    except HarnessError as exc:
        if exc.console:
            print(exc.console, file=sys.stderr)
        print(f"armguest: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
