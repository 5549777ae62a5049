"""``kvmbase run`` on the ARM demos inside the arm64 guest: JSON, dumps, tables."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kvmbase.cli import cli


def invoke(*args: str) -> tuple[int, str]:
    # In-process: a second interpreter start costs seconds under TCG.
    result = CliRunner().invoke(cli, list(args), prog_name="kvmbase")
    return result.exit_code, result.stdout


@pytest.mark.kvm
@pytest.mark.parametrize(("arch", "greeting"), [("armv8", "AArch64"), ("arm", "AArch32")])
def test_run_demo_with_every_dump_section(arch: str, greeting: str) -> None:
    status, text = invoke("run", "--arch", arch, "--uart", "none", "--dump", "all", "--json")
    assert status == 0, text
    report = json.loads(text)
    assert (report["result"]["cause"], report["result"]["code"]) == ("guest powered off", 0)
    sections = report["dumps"]["cpu0"]
    for name in ("core", "fpsimd", "sysregs", "timer", "firmware", "invariant", "vcpu", "gic"):
        assert name in sections, name
    assert ("aarch32" in sections) == (arch == "arm")
    assert report["statistics"]["cpu0"]["num_mmio"] > 0
    status, text = invoke("run", "--arch", arch, "--dump", "core")
    assert status == 0, text
    assert f"Hello from {greeting} under kvmbase!" in text
    assert "core" in text and "x30" in text and "statistics of cpu0" in text


@pytest.mark.kvm
def test_run_without_config_runs_the_hosts_own_demo() -> None:
    status, text = invoke("run", "--uart", "stdout", "--no-stats")
    assert status == 0, text
    assert "Hello from AArch64 under kvmbase!" in text
