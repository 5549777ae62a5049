"""Tests of kvmbase.config: the models, the loader and the schema."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kvmbase.config import (
    NO_INPUT,
    AddressRange,
    ConfigError,
    ConfigIssue,
    CpuConfig,
    ImageConfig,
    MachineConfig,
    MmioScratchConfig,
    Uart16550Config,
    VmConfig,
    dump_machine_config,
    load_config_data,
    load_machine_config,
    machine_json_schema,
    validate_machine_config,
)
from kvmbase.errors import KvmbaseError

# --------------------------------------------------------------------------
# A tiny fake architecture plugin


class FakeCpuid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: Literal["GenuineIntel", "AuthenticAMD"] = Field(
        default="GenuineIntel", description="CPUID vendor string."
    )


class FakeX86Config(BaseModel):
    """Settings of the fake x86 plugin."""

    model_config = ConfigDict(extra="forbid")

    some_field: int = Field(default=3, description="A number.")
    cpuid: FakeCpuid = Field(default_factory=FakeCpuid, description="CPUID.")


class FakeArmConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gic: str = Field(default="v3", description="Interrupt controller.")


ARCHES: dict[str, type[BaseModel]] = {"x86": FakeX86Config, "arm": FakeArmConfig}


def issues_of(error: ConfigError) -> dict[str, ConfigIssue]:
    """The issues of an error by dotted path; each path must occur once."""
    paths = [issue.path for issue in error.errors]
    assert len(paths) == len(set(paths)), paths
    return {issue.path: issue for issue in error.errors}


def fail(
    data: dict[str, Any], arch_models: dict[str, type[BaseModel]] = ARCHES
) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        validate_machine_config(data, arch_models)
    return caught.value


# --------------------------------------------------------------------------
# Defaults


def test_cpu_defaults_are_gem5s() -> None:
    cpu = CpuConfig()
    assert cpu.host_factor == 1.0
    assert cpu.host_freq == 2_000_000_000
    assert cpu.clock == 2_000_000_000
    assert cpu.use_coalesced_mmio is True
    assert cpu.use_perf is True
    assert cpu.use_perf_overflow is False
    assert cpu.always_sync_tc is False
    assert type(cpu.host_freq) is int


def test_vm_defaults() -> None:
    vm = VmConfig()
    assert vm.ram_size == 16 * 2**20
    assert vm.ram_base == 0
    assert vm.coalesced_mmio == []
    assert vm.coalesced_pio == []
    # Each instance gets its own lists.
    assert VmConfig().coalesced_mmio is not vm.coalesced_mmio


def test_device_defaults() -> None:
    uart = Uart16550Config(type="uart16550", port=0x3F8)
    assert (uart.name, uart.port, uart.address, uart.output) == (
        "uart0",
        0x3F8,
        None,
        "stdout",
    )
    scratch = MmioScratchConfig(type="mmio-scratch", name="s", address=0x1000)
    assert scratch.size == 4096


def test_image_defaults() -> None:
    image = ImageConfig(path="guest.bin")
    assert image.load_address == 0x100000
    assert image.entry is None
    assert image.entry_address == 0x100000
    assert image.format == "raw"
    assert ImageConfig(path="g", entry="0x2000").entry_address == 0x2000  # type: ignore[arg-type]


def test_machine_defaults() -> None:
    machine = MachineConfig(arch="x86")
    assert machine.cpu == CpuConfig()
    assert machine.vm == VmConfig()
    assert machine.devices == []
    assert machine.image is None
    assert machine.max_ticks is None
    assert machine.arch_config is None


def test_every_field_has_a_description() -> None:
    for model in (
        CpuConfig,
        AddressRange,
        VmConfig,
        Uart16550Config,
        MmioScratchConfig,
        ImageConfig,
        MachineConfig,
    ):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


# --------------------------------------------------------------------------
# Model rules


def test_models_accept_gem5_quantities() -> None:
    cpu = CpuConfig(host_freq="3.5GHz", clock="500ps")  # type: ignore[arg-type]
    assert (cpu.host_freq, cpu.clock) == (3_500_000_000, 2_000_000_000)
    vm = VmConfig.model_validate(
        {
            "ram_size": "1GiB",
            "ram_base": "0x8000_0000",
            "coalesced_mmio": [{"start": "0xfee00000", "size": "4KiB"}],
            "coalesced_pio": [{"start": 0x70, "size": 2}],
        }
    )
    assert vm.ram_size == 2**30
    assert vm.ram_base == 0x80000000
    assert vm.coalesced_mmio == [AddressRange(start=0xFEE00000, size=4096)]
    assert vm.coalesced_mmio[0].end == 0xFEE01000
    assert vm.coalesced_pio[0].size == 2


@pytest.mark.parametrize(
    ("model", "valid"),
    [
        (CpuConfig, {}),
        (VmConfig, {}),
        (AddressRange, {"start": 0, "size": 1}),
        (Uart16550Config, {"type": "uart16550", "port": 0x3F8}),
        (MmioScratchConfig, {"type": "mmio-scratch", "name": "s", "address": 0}),
        (ImageConfig, {"path": "x"}),
        (MachineConfig, {"arch": "x86"}),
    ],
)
def test_unknown_keys_are_refused(
    model: type[BaseModel], valid: dict[str, Any]
) -> None:
    model.model_validate(valid)
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**valid, "bogus": 1})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
        (("bogus",), "extra_forbidden")
    ]


@pytest.mark.parametrize("factor", [0, -1.0, float("inf"), float("nan")])
def test_host_factor_must_be_positive_and_finite(factor: float) -> None:
    with pytest.raises(ValidationError) as caught:
        CpuConfig(host_factor=factor)
    assert caught.value.errors()[0]["loc"] == ("host_factor",)


@pytest.mark.parametrize("size", ["17", "0", "16MB", "4097"])
def test_ram_size_must_be_a_positive_multiple_of_4kib(size: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VmConfig(ram_size=size)  # type: ignore[arg-type]
    (error,) = caught.value.errors()
    assert error["loc"] == ("ram_size",)
    assert "is not a positive multiple of 4 KiB (4096 bytes)" in error["msg"]
    # "16MB" is decimal here, unlike gem5: the message gives the hint.
    assert "MB means 10**6 bytes, MiB 2**20" in error["msg"]


def test_ram_base_must_be_page_aligned() -> None:
    with pytest.raises(ValidationError) as caught:
        VmConfig(ram_base="0x1800")  # type: ignore[arg-type]
    (error,) = caught.value.errors()
    assert error["loc"] == ("ram_base",)
    assert "RAM base 0x1800 is not 4 KiB (0x1000) aligned" in error["msg"]


def test_ram_must_fit_in_the_address_space() -> None:
    with pytest.raises(ValidationError) as caught:
        VmConfig(ram_base=2**64 - 4096, ram_size="8KiB")  # type: ignore[arg-type]
    assert "RAM of 8 KiB at 0xfffffffffffff000 goes past the end" in str(caught.value)
    assert VmConfig(ram_base=2**64 - 4096, ram_size=4096).ram_size == 4096


def test_address_range_rules() -> None:
    with pytest.raises(ValidationError) as caught:
        AddressRange(start=0, size=0)
    assert caught.value.errors()[0]["loc"] == ("size",)
    with pytest.raises(ValidationError) as caught:
        AddressRange(start=2**64 - 1, size=2)
    assert "range starting at 0xffffffffffffffff of size 2 B goes past the end" in str(
        caught.value
    )
    assert AddressRange(start=2**64 - 1, size=1).end == 2**64


@pytest.mark.parametrize(
    "location", [{}, {"port": 0x3F8, "address": 0x10000000}], ids=["neither", "both"]
)
def test_uart_needs_exactly_one_of_port_and_address(location: dict[str, int]) -> None:
    with pytest.raises(ValidationError) as caught:
        Uart16550Config.model_validate({"type": "uart16550", **location})
    (error,) = caught.value.errors()
    assert error["loc"] == ()
    assert (
        "give exactly one of 'port' (x86 IO port) or 'address' (MMIO address)"
        in error["msg"]
    )


def test_uart_port_range_and_forms() -> None:
    assert (
        Uart16550Config.model_validate({"type": "uart16550", "port": "0x3f8"}).port
        == 0x3F8
    )
    assert Uart16550Config(type="uart16550", port=0xFFFF).port == 0xFFFF
    assert Uart16550Config(type="uart16550", address="0x1000").address == 0x1000  # type: ignore[arg-type]
    for port in (0x10000, -1, "com1"):
        with pytest.raises(ValidationError) as caught:
            Uart16550Config.model_validate({"type": "uart16550", "port": port})
        (error,) = caught.value.errors()
        assert error["loc"] == ("port",)
        assert (
            f"{port!r} is not an IO port: use an integer from 0 to 0xFFFF"
            in error["msg"]
        )


def test_mmio_scratch_rules() -> None:
    with pytest.raises(ValidationError) as caught:
        MmioScratchConfig.model_validate(
            {"type": "mmio-scratch", "address": 0, "size": 0}
        )
    assert {e["loc"] for e in caught.value.errors()} == {("name",), ("size",)}
    with pytest.raises(ValidationError) as caught:
        MmioScratchConfig.model_validate(
            {
                "type": "mmio-scratch",
                "name": "s",
                "address": 2**64 - 4096,
                "size": "8KiB",
            }
        )
    assert "8 KiB at 0xfffffffffffff000 goes past the end" in str(caught.value)


def test_devices_are_told_apart_by_type() -> None:
    machine = MachineConfig.model_validate(
        {
            "arch": "x86",
            "devices": [
                {"type": "uart16550", "port": 0x3F8},
                {"type": "mmio-scratch", "name": "scratch", "address": "0xd0000000"},
            ],
        }
    )
    assert [type(d) for d in machine.devices] == [Uart16550Config, MmioScratchConfig]


def test_max_ticks_must_be_positive() -> None:
    with pytest.raises(ValidationError) as caught:
        MachineConfig(arch="x86", max_ticks=0)
    assert caught.value.errors()[0]["loc"] == ("max_ticks",)
    assert MachineConfig(arch="x86", max_ticks=10**12).max_ticks == 10**12


def test_arch_config_takes_only_models() -> None:
    with pytest.raises(ValidationError) as caught:
        MachineConfig.model_validate({"arch": "x86", "arch_config": {"some_field": 1}})
    assert "arch_config must be a validated plugin model" in str(caught.value)
    machine = MachineConfig(arch="x86", arch_config=FakeX86Config(some_field=1))
    assert machine.arch_config == FakeX86Config(some_field=1)


def test_machine_dumps_to_json_with_the_plugin_section() -> None:
    machine = MachineConfig.model_validate(
        {
            "arch": "x86",
            "devices": [{"type": "uart16550", "port": 0x3F8}],
            "image": {"path": "/guest.bin"},
            "arch_config": FakeX86Config(some_field=7),
        }
    )
    data = machine.model_dump(mode="json")
    json.dumps(data)  # must not raise
    assert data["arch_config"] == {"some_field": 7, "cpuid": {"vendor": "GenuineIntel"}}
    assert data["cpu"]["host_freq"] == 2_000_000_000
    assert data["devices"][0] == {
        "type": "uart16550",
        "name": "uart0",
        "port": 0x3F8,
        "address": None,
        "output": "stdout",
    }


def test_dump_machine_config_round_trips(tmp_path: Path) -> None:
    image = tmp_path / "guest.bin"
    image.write_bytes(b"\xf4")
    machine = validate_machine_config(
        {
            "arch": "x86",
            "vm": {
                "ram_size": "64MiB",
                "coalesced_mmio": [{"start": 0x1000, "size": 8}],
            },
            "devices": [{"type": "uart16550", "port": 0x3F8, "output": "none"}],
            "image": {"path": str(image), "entry": "0x100010"},
            "max_ticks": 5,
            "x86": {"some_field": 9, "cpuid": {"vendor": "AuthenticAMD"}},
        },
        ARCHES,
    )
    data = dump_machine_config(machine)
    assert "arch_config" not in data
    assert data["x86"] == {"some_field": 9, "cpuid": {"vendor": "AuthenticAMD"}}
    again = validate_machine_config(json.loads(json.dumps(data)), ARCHES)
    assert again == machine


# --------------------------------------------------------------------------
# Cross-field rules, reported at the offending value


def test_duplicate_device_names_name_the_duplicate() -> None:
    error = fail(
        {
            "arch": "x86",
            "devices": [
                {"type": "mmio-scratch", "name": "a", "address": 0x1000},
                {"type": "uart16550", "name": "b", "port": 0x3F8},
                {"type": "mmio-scratch", "name": "b", "address": 0x2000},
            ],
        }
    )
    assert error.errors == [
        ConfigIssue(
            ("devices", 2, "name"), "device name 'b' is already used by device 1", "b"
        )
    ]


def test_uart_default_names_clash() -> None:
    error = fail(
        {
            "arch": "x86",
            "devices": [
                {"type": "uart16550", "port": 0x3F8},
                {"type": "uart16550", "port": 0x2F8},
            ],
        }
    )
    assert str(error) == (
        "devices.1.name: device name 'uart0' is already used by device 0 (got 'uart0')"
    )


@pytest.mark.parametrize("load_address", ["0xfff", "0x2000000", "0x1001000"])
def test_image_load_address_must_lie_in_ram(tmp_path: Path, load_address: str) -> None:
    (tmp_path / "g.bin").write_bytes(b"\0")
    error = fail(
        {
            "arch": "x86",
            "vm": {"ram_base": "0x1000", "ram_size": "16MiB"},
            "image": {"path": str(tmp_path / "g.bin"), "load_address": load_address},
        }
    )
    (issue,) = error.errors
    assert issue.loc == ("image", "load_address")
    assert issue.message == (
        f"load address {int(load_address, 16):#x} is outside RAM [0x1000, 0x1001000)"
    )
    assert issue.input == int(load_address, 16)


def test_image_at_the_start_and_end_of_ram_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "g.bin").write_bytes(b"\0")
    for load_address in (0x1000, 0x1000FFF):
        machine = validate_machine_config(
            {
                "arch": "x86",
                "vm": {"ram_base": 0x1000, "ram_size": "16MiB"},
                "image": {
                    "path": str(tmp_path / "g.bin"),
                    "load_address": load_address,
                },
            },
            ARCHES,
        )
        assert machine.image is not None
        assert machine.image.load_address == load_address


# --------------------------------------------------------------------------
# The plugin section and the top-level keys


def test_plugin_section_is_validated_by_the_plugin_model() -> None:
    machine = validate_machine_config(
        {"arch": "x86", "x86": {"some_field": 5, "cpuid": {"vendor": "AuthenticAMD"}}},
        ARCHES,
    )
    assert machine.arch_config == FakeX86Config(
        some_field=5, cpuid=FakeCpuid(vendor="AuthenticAMD")
    )


def test_absent_plugin_section_gets_the_plugin_defaults() -> None:
    machine = validate_machine_config({"arch": "arm"}, ARCHES)
    assert machine.arch_config == FakeArmConfig()
    assert isinstance(machine.arch_config, FakeArmConfig)


def test_plugin_errors_are_prefixed_with_the_arch() -> None:
    error = fail({"arch": "x86", "x86": {"cpuid": {"vendor": "Cyrix"}, "typo": 1}})
    issues = issues_of(error)
    assert set(issues) == {"x86.cpuid.vendor", "x86.typo"}
    assert issues["x86.cpuid.vendor"].loc == ("x86", "cpuid", "vendor")
    assert issues["x86.cpuid.vendor"].input == "Cyrix"
    assert "'GenuineIntel' or 'AuthenticAMD'" in issues["x86.cpuid.vendor"].message
    assert (
        issues["x86.typo"].message == "unknown key; expected one of: cpuid, some_field"
    )


def test_plugin_section_must_be_a_mapping() -> None:
    error = fail({"arch": "x86", "x86": [1, 2]})
    (issue,) = error.errors
    assert issue.loc == ("x86",)
    assert issue.input == [1, 2]


def test_unknown_arch_lists_the_installed_ones() -> None:
    error = fail({"arch": "riscv", "riscv": {"isa": "rv64gc"}})
    assert error.errors == [
        ConfigIssue(
            ("arch",), "arch 'riscv' is not installed; installed: arm, x86", "riscv"
        )
    ]


def test_unknown_arch_with_no_plugin_installed() -> None:
    error = fail({"arch": "x86"}, {})
    assert str(error) == (
        "arch: no architecture plugin is installed (install one, e.g. pip install "
        "kvm-x86) (got 'x86')"
    )


def test_missing_arch() -> None:
    error = fail({"vm": {}})
    assert error.errors == [ConfigIssue(("arch",), "required key is missing", NO_INPUT)]
    assert str(error) == "arch: required key is missing"


def test_section_of_another_arch_is_an_error() -> None:
    error = fail({"arch": "x86", "arm": {"gic": "v2"}})
    assert error.errors == [
        ConfigIssue(("arm",), "section 'arm' given but arch is 'x86'")
    ]


def test_unknown_top_level_keys() -> None:
    error = fail({"arch": "x86", "devics": [], "arch_config": {}, "zzz": 1})
    issues = issues_of(error)
    assert issues["devics"].message == "unknown key; did you mean 'devices'?"
    assert issues["devics"].input == []
    # arch_config is filled from the arch's section, never read from a key.
    assert issues["arch_config"].message.startswith("unknown key; ")
    assert issues["zzz"].message == (
        "unknown key; expected one of: arch, arm, cpu, devices, image, max_ticks, vm, x86"
    )


def test_misspelt_nested_keys_get_a_suggestion() -> None:
    error = fail(
        {
            "arch": "x86",
            "vm": {"ram_sise": "32MiB"},
            "devices": [{"type": "uart16550", "port": 0x3F8, "ouput": "stderr"}],
            "cpu": {"host_frequency": "3GHz"},
        }
    )
    issues = issues_of(error)
    assert issues["vm.ram_sise"].message == "unknown key; did you mean 'ram_size'?"
    assert issues["devices.0.ouput"].message == "unknown key; did you mean 'output'?"
    assert (
        issues["cpu.host_frequency"].message == "unknown key; did you mean 'host_freq'?"
    )


def test_device_errors_have_no_union_tag_in_their_path() -> None:
    error = fail(
        {
            "arch": "x86",
            "devices": [
                {"type": "uart16550"},
                {"type": "mmio-scratch", "name": "s"},
                {"type": "floppy"},
                {"name": "untyped"},
            ],
        }
    )
    issues = issues_of(error)
    assert set(issues) == {"devices.0", "devices.1.address", "devices.2", "devices.3"}
    assert "give exactly one of 'port'" in issues["devices.0"].message
    assert issues["devices.1.address"].message == "required key is missing"
    assert "'uart16550', 'mmio-scratch'" in issues["devices.2"].message
    assert "'type'" in issues["devices.3"].message


def test_arch_names_must_not_clash_with_core_keys() -> None:
    with pytest.raises(ValueError, match="clash with config keys: \\['vm'\\]"):
        validate_machine_config({"arch": "vm"}, {"vm": FakeArmConfig})


# --------------------------------------------------------------------------
# Files

TOML = """\
arch = "x86"
max_ticks = 1000000000

[cpu]
host_freq = "3GHz"
clock = "1ns"
use_perf = false

[vm]
ram_size = "64MiB"
ram_base = "0x0"
coalesced_mmio = [{ start = "0xfee00000", size = "4KiB" }]

[[devices]]
type = "uart16550"
port = 0x3f8
output = "stderr"

[[devices]]
type = "mmio-scratch"
name = "scratch"
address = "0xd0000000"

[image]
path = "guests/hello.bin"
load_address = "0x100000"

[x86]
some_field = 4

[x86.cpuid]
vendor = "AuthenticAMD"
"""

YAML = """\
arch: x86
max_ticks: 1000000000
cpu:
  host_freq: 3GHz
  clock: 1ns
  use_perf: false
vm:
  ram_size: 64MiB
  ram_base: 0x0
  coalesced_mmio:
    - {start: "0xfee00000", size: 4KiB}
devices:
  - type: uart16550
    port: 0x3f8
    output: stderr
  - type: mmio-scratch
    name: scratch
    address: "0xd0000000"
image:
  path: guests/hello.bin
  load_address: "0x100000"
x86:
  some_field: 4
  cpuid:
    vendor: AuthenticAMD
"""

JSON = """\
{
  "arch": "x86",
  "max_ticks": 1000000000,
  "cpu": {"host_freq": "3GHz", "clock": "1ns", "use_perf": false},
  "vm": {
    "ram_size": "64MiB",
    "ram_base": "0x0",
    "coalesced_mmio": [{"start": "0xfee00000", "size": "4KiB"}]
  },
  "devices": [
    {"type": "uart16550", "port": 1016, "output": "stderr"},
    {"type": "mmio-scratch", "name": "scratch", "address": "0xd0000000"}
  ],
  "image": {"path": "guests/hello.bin", "load_address": "0x100000"},
  "x86": {"some_field": 4, "cpuid": {"vendor": "AuthenticAMD"}}
}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A directory with a guest image at guests/hello.bin."""
    (tmp_path / "guests").mkdir()
    (tmp_path / "guests" / "hello.bin").write_bytes(b"\xf4")
    return tmp_path


def test_toml_yaml_and_json_give_the_same_machine(config_dir: Path) -> None:
    machines = []
    for name, text in [
        ("m.toml", TOML),
        ("m.yaml", YAML),
        ("m.yml", YAML),
        ("m.json", JSON),
    ]:
        path = config_dir / name
        path.write_text(text)
        machines.append(load_machine_config(path, ARCHES))
    first = machines[0]
    assert all(machine == first for machine in machines)
    assert first.cpu.host_freq == 3_000_000_000
    assert first.cpu.clock == 1_000_000_000
    assert first.cpu.use_perf is False
    assert first.vm.ram_size == 64 * 2**20
    assert first.vm.coalesced_mmio == [AddressRange(start=0xFEE00000, size=4096)]
    assert first.devices == [
        Uart16550Config(type="uart16550", port=0x3F8, output="stderr"),
        MmioScratchConfig(type="mmio-scratch", name="scratch", address=0xD0000000),
    ]
    assert first.image == ImageConfig(
        path=str(config_dir / "guests" / "hello.bin"), load_address=0x100000
    )
    assert first.max_ticks == 10**9
    assert first.arch_config == FakeX86Config(
        some_field=4, cpuid=FakeCpuid(vendor="AuthenticAMD")
    )


def test_relative_image_path_is_resolved_against_the_config_directory(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config_dir / "m.toml").write_text(TOML)
    # The working directory must not matter.
    monkeypatch.chdir("/")
    machine = load_machine_config(str(config_dir / "m.toml"), ARCHES)
    assert machine.image is not None
    assert Path(machine.image.path) == config_dir / "guests" / "hello.bin"
    assert Path(machine.image.path).is_absolute()


def test_relative_image_path_without_a_file_uses_the_working_directory(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(config_dir)
    data = {"arch": "x86", "image": {"path": "guests/hello.bin"}}
    machine = validate_machine_config(data, ARCHES)
    assert machine.image is not None
    assert Path(machine.image.path) == config_dir / "guests" / "hello.bin"
    other = config_dir / "other"
    other.mkdir()
    (other / "guests").mkdir()
    (other / "guests" / "hello.bin").write_bytes(b"")
    machine = validate_machine_config(data, ARCHES, base_dir=other)
    assert machine.image is not None
    assert Path(machine.image.path) == other / "guests" / "hello.bin"


def test_missing_image_file(config_dir: Path) -> None:
    path = config_dir / "m.toml"
    path.write_text(TOML.replace("guests/hello.bin", "guests/missing.bin"))
    with pytest.raises(ConfigError) as caught:
        load_machine_config(path, ARCHES)
    resolved = config_dir / "guests" / "missing.bin"
    assert caught.value.source == str(path)
    assert caught.value.errors == [
        ConfigIssue(
            ("image", "path"),
            f"image file {str(resolved)!r} not found",
            "guests/missing.bin",
        )
    ]
    assert str(caught.value) == (
        f"{path}: image.path: image file {str(resolved)!r} not found (got 'guests/missing.bin')"
    )


def test_image_path_that_is_a_directory(config_dir: Path) -> None:
    error = fail({"arch": "x86", "image": {"path": str(config_dir / "guests")}})
    (issue,) = error.errors
    assert issue.loc == ("image", "path")
    assert issue.message == f"{str(config_dir / 'guests')!r} is not a file"


SEVERAL_MISTAKES = """\
arch = "x86"

[cpu]
host_factor = 0
clock = "2THz"

[vm]
ram_size = "17"

[[devices]]
type = "uart16550"
port = 70000

[[devices]]
type = "mmio-scratch"
name = "scratch"
address = "0xd0000000"
size = "16 mebibytes"

[x86]
some_field = "many"

[arm]
gic = "v2"
"""


def test_a_file_with_several_mistakes_reports_all_of_them(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(SEVERAL_MISTAKES)
    with pytest.raises(ConfigError) as caught:
        load_machine_config(path, ARCHES)
    error = caught.value
    # In file order, each at its exact path.
    assert [issue.path for issue in error.errors] == [
        "cpu.host_factor",
        "cpu.clock",
        "vm.ram_size",
        "devices.0.port",
        "devices.1.size",
        "x86.some_field",
        "arm",
    ]
    issues = issues_of(error)
    assert issues["cpu.host_factor"].input == 0
    assert issues["cpu.host_factor"].message == "Input should be greater than 0"
    assert issues["cpu.clock"].message.startswith(
        "'2THz' is not a frequency: use a number of Hz"
    )
    assert issues["vm.ram_size"].input == "17"
    assert issues["devices.0.port"].message.startswith("70000 is not an IO port")
    assert issues["devices.1.size"].message.startswith("'16 mebibytes' is not a size")
    assert issues["x86.some_field"].input == "many"
    assert issues["arm"].message == "section 'arm' given but arch is 'x86'"
    lines = str(error).splitlines()
    assert len(lines) == 7
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert lines[2] == (
        f"{path}: vm.ram_size: RAM size 17 bytes is not a positive multiple of 4 KiB "
        "(4096 bytes); note that MB means 10**6 bytes, MiB 2**20 (got '17')"
    )
    assert lines[3] == (
        f"{path}: devices.0.port: 70000 is not an IO port: use an integer from 0 to "
        "0xFFFF, in decimal or as 0x-prefixed hex (got 70000)"
    )
    assert lines[5] == (
        f"{path}: x86.some_field: Input should be a valid integer, unable to parse "
        "string as an integer (got 'many')"
    )


def test_the_same_mistakes_in_yaml_and_json_give_the_same_paths(tmp_path: Path) -> None:
    data = {
        "arch": "x86",
        "cpu": {"host_factor": 0},
        "vm": {"ram_size": "17"},
        "devices": [{"type": "uart16550", "port": 70000}],
        "x86": {"some_field": "many"},
    }
    expected = ["cpu.host_factor", "vm.ram_size", "devices.0.port", "x86.some_field"]
    for name, text in [
        ("m.yaml", yaml.safe_dump(data, sort_keys=False)),
        ("m.json", json.dumps(data)),
    ]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_machine_config(path, ARCHES)
        assert [issue.path for issue in caught.value.errors] == expected, name


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "bad.toml",
            'arch = "x86"\n\n[vm]\nram_size = = 3\n',
            "invalid TOML: * (at line 4, column 12)",
        ),
        (
            "bad.yaml",
            "arch: x86\nvm:\n  ram_size: [1, 2\n",
            "invalid YAML at line 4, column 1: expected ',' or ']', but got '<stream end>'",
        ),
        (
            "bad.json",
            '{\n  "arch": "x86",\n  "vm": {"ram_size": }\n}\n',
            "invalid JSON at line 3, column 22: Expecting value",
        ),
        (
            "dup.yaml",
            "arch: x86\nvm:\n  ram_size: 4096\n  ram_size: 8192\n",
            "invalid YAML at line 4, column 3: duplicate key 'ram_size'",
        ),
        (
            "dup.json",
            '{"arch": "x86", "arch": "arm"}',
            "invalid JSON: duplicate key 'arch'",
        ),
        (
            "dup.toml",
            'arch = "x86"\narch = "arm"\n',
            "invalid TOML: * (at line 2, column 13)",
        ),
    ],
)
def test_parse_errors_give_line_and_column(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config_data(path)
    assert caught.value.source == str(path)
    (issue,) = caught.value.errors
    assert issue.loc == ()
    assert issue.input is NO_INPUT
    # tomllib's wording varies between versions (tomli on 3.10); its
    # position does not, and "*" stands for the wording.
    head, star, tail = message.partition("*")
    if star:
        assert issue.message.startswith(head), issue.message
        assert issue.message.endswith(tail), issue.message
    else:
        assert issue.message == message
    assert str(caught.value) == f"{path}: {issue.message}"


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "machine.ini"
    path.write_text("[vm]\n")
    with pytest.raises(ConfigError) as caught:
        load_config_data(path)
    assert str(caught.value) == (
        f"{path}: unknown config file type '.ini'; use .toml, .yaml, .yml, .json"
    )
    with pytest.raises(ConfigError, match=r"unknown config file type '\(no suffix\)'"):
        load_config_data(tmp_path / "machine")


def test_suffix_case_does_not_matter(tmp_path: Path) -> None:
    path = tmp_path / "M.TOML"
    path.write_text('arch = "x86"\n')
    assert load_config_data(path) == {"arch": "x86"}


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_machine_config(path, ARCHES)
    assert caught.value.errors == [ConfigIssue((), "config file not found")]
    assert str(caught.value) == f"{path}: config file not found"


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    with pytest.raises(ConfigError, match="cannot read config file: Is a directory"):
        load_config_data(directory)
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"arch: \xe9\n")
    with pytest.raises(ConfigError, match="config file is not UTF-8 text"):
        load_config_data(path)


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [("list.yaml", "- arch: x86\n", "list"), ("str.json", '"x86"', "str")],
)
def test_top_level_must_be_a_mapping(
    tmp_path: Path, name: str, text: str, kind: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config_data(path)
    assert caught.value.errors == [
        ConfigIssue(
            (), f"the top level must be a mapping of keys to values, not a {kind}"
        )
    ]


def test_empty_yaml_file_reports_the_missing_arch(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert load_config_data(path) == {}
    with pytest.raises(ConfigError) as caught:
        load_machine_config(path, ARCHES)
    assert str(caught.value) == f"{path}: arch: required key is missing"


# --------------------------------------------------------------------------
# ConfigError itself


def test_config_error_without_source_and_long_inputs() -> None:
    error = ConfigError(
        [
            ConfigIssue(("vm", "ram_size"), "bad", "x" * 100),
            ConfigIssue((), "whole file"),
            ConfigIssue(("max_ticks",), "bad", None),
        ]
    )
    lines = str(error).splitlines()
    assert lines[0] == "vm.ram_size: bad (got '" + "x" * 56 + "...)"
    assert lines[1] == "whole file"
    assert lines[2] == "max_ticks: bad (got None)"
    assert error.source is None


def test_config_error_is_a_kvmbase_error() -> None:
    assert issubclass(ConfigError, KvmbaseError)


def test_config_error_pickles() -> None:
    error = ConfigError(
        [ConfigIssue(("arch",), "required key is missing")], source="m.toml"
    )
    copy = pickle.loads(pickle.dumps(error))
    assert copy.errors == error.errors
    assert copy.errors[0].input is NO_INPUT
    assert copy.source == "m.toml"
    assert str(copy) == "m.toml: arch: required key is missing"


# --------------------------------------------------------------------------
# JSON Schema


def test_machine_json_schema_has_the_plugin_sections() -> None:
    schema = machine_json_schema(ARCHES)
    json.dumps(schema)  # must not raise
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "MachineConfig"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["arch"]
    properties = schema["properties"]
    assert list(properties) == [
        "arch",
        "cpu",
        "vm",
        "devices",
        "image",
        "max_ticks",
        "arm",
        "x86",
    ]
    assert properties["arch"]["enum"] == ["arm", "x86"]
    assert properties["x86"]["anyOf"] == [
        {"$ref": "#/$defs/FakeX86Config"},
        {"type": "null"},
    ]
    x86 = schema["$defs"]["FakeX86Config"]
    assert x86["properties"]["some_field"]["type"] == "integer"
    assert x86["additionalProperties"] is False
    assert "FakeCpuid" in schema["$defs"]


def test_machine_json_schema_with_one_or_no_plugin() -> None:
    one = machine_json_schema({"x86": FakeX86Config})
    assert one["properties"]["arch"]["const"] == "x86"
    none = machine_json_schema({})
    assert none["properties"]["arch"]["type"] == "string"
    assert "x86" not in none["properties"]
    assert "arch_config" not in none["properties"]


def alternatives(schema: dict[str, Any]) -> list[str]:
    """The JSON types a property accepts, with null left out."""
    types: list[str] = []
    for alternative in schema["anyOf"]:
        types += (
            alternatives(alternative)
            if "anyOf" in alternative
            else [alternative["type"]]
        )
    return [t for t in types if t != "null"]


def test_unit_typed_fields_are_string_or_integer_in_the_schema() -> None:
    defs = machine_json_schema(ARCHES)["$defs"]
    assert alternatives(defs["CpuConfig"]["properties"]["clock"]) == [
        "number",
        "string",
    ]
    assert alternatives(defs["CpuConfig"]["properties"]["host_freq"]) == [
        "number",
        "string",
    ]
    assert alternatives(defs["VmConfig"]["properties"]["ram_size"]) == [
        "integer",
        "string",
    ]
    assert alternatives(defs["VmConfig"]["properties"]["ram_base"]) == [
        "integer",
        "string",
    ]
    assert alternatives(defs["AddressRange"]["properties"]["start"]) == [
        "integer",
        "string",
    ]
    assert alternatives(defs["ImageConfig"]["properties"]["entry"]) == [
        "integer",
        "string",
    ]
    assert alternatives(defs["Uart16550Config"]["properties"]["port"]) == [
        "integer",
        "string",
    ]
    assert alternatives(defs["MmioScratchConfig"]["properties"]["size"]) == [
        "integer",
        "string",
    ]
    # Defaults are shown as a user would write them.
    assert defs["CpuConfig"]["properties"]["clock"]["default"] == "2GHz"
    assert defs["VmConfig"]["properties"]["ram_size"]["default"] == "16MiB"
    # Every property documents itself.
    for name, model in defs.items():
        if name.startswith("Fake"):
            continue
        for key, prop in model["properties"].items():
            assert prop.get("description"), f"{name}.{key}"


def test_machine_config_model_schema_also_works() -> None:
    schema = MachineConfig.model_json_schema()
    assert "arch_config" in schema["properties"]
