"""The kvmbase command as a person runs it: output, exit status, no tracebacks."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_host_lacks

from kvm_x86.guests import guest_path

KVMBASE = [sys.executable, "-m", "kvmbase.cli"]


def kvmbase(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KVMBASE, *args], capture_output=True, text=True, timeout=120, env=env
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], status: int) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


DEMO_LINES = [
    "kvmbase demo: hello from a 64-bit guest",
    "MMIO: scratch device at 0xd0000000 read back what was written",
    "dropping to ring 3 for the compute loop",
    "ring 3: running xorshift64",
]


@pytest.mark.kvm
def test_run_without_arguments_runs_the_demo_and_prints_statistics() -> None:
    result = kvmbase("run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == DEMO_LINES
    assert lines[4].startswith("ring 3: result 0x")
    assert lines[5] == "ring 0 again (hlt in ring 3 faulted); halting"
    assert lines[6] == "exiting with status 0 through the guest-ops page"
    assert "statistics of cpu0" in result.stdout
    for name in ("num_vm_exits", "num_io", "num_mmio", "num_halt", "committed_insts"):
        assert name in result.stdout
    assert "guest exited with status 0 (code 0)" in result.stdout


@pytest.mark.kvm
def test_run_json_reports_the_statistics() -> None:
    result = kvmbase("run", "--json", "--uart", "none")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    stats = data["statistics"]["cpu0"]
    assert (data["result"]["cause"], data["result"]["code"]) == ("guest exited with status 0", 0)
    assert stats["num_halt"] == 0
    assert stats["num_mmio"] == 5  # four scratch accesses, the exit status
    # Every character goes out with an LSR poll (in) and the data (out).
    assert stats["num_io"] % 2 == 0 and stats["num_io"] > 400
    assert stats["num_vm_exits"] == stats["num_io"] + stats["num_mmio"]
    assert data["guest_ops"] == {"stats_dumps": [], "checkpoints": []}


@pytest.mark.kvm
def test_run_a_config_file(tmp_path: Path) -> None:
    output = tmp_path / "uart.txt"
    config = tmp_path / "machine.toml"
    config.write_text(
        f"""
arch = "x86"
[vm]
ram_size = "32MiB"
[[devices]]
type = "uart16550"
name = "com1"
port = 0x3F8
output = "{output}"
[[devices]]
type = "mmio-scratch"
name = "scratch0"
address = 0xD0000000
[[devices]]
type = "guest-ops"
address = 0xFFFF0000
[image]
path = "{guest_path('demo.bin')}"
[x86]
stack_top = 0x80000
"""
    )
    result = kvmbase("run", str(config), "--no-stats")
    assert result.returncode == 0, result.stderr
    assert output.read_text().splitlines()[:4] == DEMO_LINES
    assert "statistics" not in result.stdout
    assert "guest exited with status 0 (code 0)" in result.stdout


@pytest.mark.kvm
def test_guest_failure_is_one_message_with_registers(
    guest_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "machine.json"
    config.write_text(
        json.dumps({"arch": "x86", "image": {"path": str(guest_dir / "triple.bin")}})
    )
    result = kvmbase("run", str(config))
    assert_clean_failure(result, 1)
    assert "guest error: vCPU 0: the guest shut the CPU down" in result.stderr
    assert "triple fault" in result.stderr
    assert "rip" in result.stderr


def test_bad_config_reports_every_error_with_its_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "arch: x86\n"
        "cpu: {host_factor: -1}\n"
        "vm: {ram_size: 17}\n"
        "devices:\n"
        "  - {type: uart16550, name: u, port: 0x3F8, address: 0x1000}\n"
        "x86: {stack_tops: 1}\n"
    )
    for command in (("run", str(config)), ("config", "check", str(config))):
        result = kvmbase(*command)
        assert_clean_failure(result, 2)
        for path in ("cpu.host_factor", "vm.ram_size", "devices.0", "x86.stack_tops"):
            assert path in result.stderr, (path, result.stderr)
        assert str(config) in result.stderr


def test_config_check_applies_the_architectures_own_rules(tmp_path: Path) -> None:
    config = tmp_path / "x86.toml"
    config.write_text(
        'arch = "x86"\n[vm]\nram_size = "1MiB"\n[x86]\nstack_top = 0x80008\n'
        '[image]\npath = "' + str(guest_path("demo.bin")) + '"\nload_address = 0x2000\n'
    )
    for command in (("config", "check", str(config)), ("run", str(config))):
        result = kvmbase(*command)
        assert_clean_failure(result, 2)
        assert f"{config}: vm.ram_size: the x86 machine needs at least 2 MiB" in result.stderr
        assert f"{config}: x86.stack_top: must be 16-byte aligned" in result.stderr
        assert f"{config}: image.load_address: would overlap the page tables" in result.stderr


def test_config_check_refuses_devices_on_the_local_apic(tmp_path: Path) -> None:
    config = tmp_path / "apic.json"
    config.write_text(
        json.dumps(
            {
                "arch": "x86",
                "devices": [
                    {"type": "mmio-scratch", "name": "local_apic", "address": 0xFEE00800},
                    {"type": "mmio-scratch", "name": "below", "address": 0xFEDFF000},
                ],
            }
        )
    )
    result = kvmbase("config", "check", str(config))
    assert_clean_failure(result, 2)
    lines = result.stderr.splitlines()
    assert lines == [
        f"{config}: devices.0.name: the name 'local_apic' belongs to the local APICs "
        "(got 'local_apic')",
        f"{config}: devices.0.address: overlaps the local APIC page [0xfee00000, 0xfee01000) "
        "(got 4276094976)",
    ]


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    config = tmp_path / "good.json"
    config.write_text(json.dumps({"arch": "x86", "vm": {"ram_size": "4MiB"}}))
    result = kvmbase("config", "check", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{config}: ok (arch x86, 0 devices)"


def test_config_schema_is_json_with_the_plugin_section() -> None:
    result = kvmbase("config", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert "x86" in schema["properties"]
    assert "ram_size" in json.dumps(schema)


def test_missing_kvm_device_is_one_clear_message() -> None:
    result = kvmbase("--kvm-device", "/nonexistent/kvm", "run")
    assert_clean_failure(result, 1)
    assert result.stderr.startswith("kvmbase: error: cannot use /nonexistent/kvm")
    assert "ENOENT" in result.stderr


@pytest.mark.parametrize(
    ("device", "words"),
    [("/dev/null", "not a KVM device"), ("/", "EISDIR")],
)
def test_unusable_kvm_device_is_one_clear_message(device: str, words: str) -> None:
    for command in (("run",), ("caps",)):
        result = kvmbase("--kvm-device", device, *command)
        assert_clean_failure(result, 1)
        assert words in result.stderr


@pytest.mark.kvm
def test_caps_names_the_flavour_and_the_capabilities() -> None:
    result = kvmbase("caps", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["host"]["API version"] == 12
    assert data["host"]["KVM flavour"] in {"kvm_intel", "kvm_amd", "kvm_pvm", "kvm"}
    assert data["capabilities"]["USER_MEMORY"] == 1
    assert set(data["capabilities"]) >= {"IMMEDIATE_EXIT", "COALESCED_MMIO", "ONE_REG"}
    text = kvmbase("caps").stdout
    assert "KVM_CAP_IMMEDIATE_EXIT" in text and "guest cycle counter" in text


@pytest.mark.kvm
def test_plugins_lists_x86_as_runnable() -> None:
    result = kvmbase("plugins", "--json")
    assert result.returncode == 0, result.stderr
    (x86,) = [row for row in json.loads(result.stdout)["architectures"] if row["name"] == "x86"]
    assert x86["distribution"] == "kvm-x86"
    assert x86["runs here"] is True
    assert "x86_64" in x86["hosts"]


@pytest.mark.kvm
def test_run_arch_picks_the_demo() -> None:
    result = kvmbase("run", "--arch", "x86", "--json", "--uart", "none")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["result"]["cause"] == "guest exited with status 0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "riscv"], "kvmbase: error: --arch riscv: not installed; installed: "),
        (["--arch", "armv8"], "kvmbase: error: --arch armv8: its demo cannot run here (host is "),
        (["machine.toml", "--arch", "x86"], "kvmbase: error: --arch picks a demo: give it without"),
    ],
)
def test_run_arch_refusals(args: list[str], message: str) -> None:
    if args[1] == "armv8" and platform.machine() == "aarch64":
        skip_host_lacks("a host where armv8 cannot run (this one is arm64)")
    result = kvmbase("run", *args)
    assert_clean_failure(result, 1)
    assert result.stderr.startswith(message), result.stderr


def test_plugins_hooks_and_conformance_reach() -> None:
    result = kvmbase("plugins", "--hooks", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    hooks = listing["hooks"]
    assert {"kvmbase_register_arch", "kvmbase_exit_handlers", "kvmbase_add_commands"} <= set(hooks)
    assert {"x86", "armv8", "arm"} <= set(hooks["kvmbase_register_arch"])
    assert "x86" in hooks["kvmbase_add_commands"]  # kvmbase exec
    rows = {row["name"]: row for row in listing["architectures"]}
    assert rows["x86"]["conformance"] == "the whole suite"
    if platform.machine() != "aarch64":
        assert rows["armv8"]["conformance"] == (
            f"registration and config only (host is {platform.machine()}; armv8 runs on aarch64)"
        )
    text = kvmbase("plugins", "--hooks").stdout
    assert "implemented by" in text and "kvmbase_dump_sections" in text
