"""kvm-x86-lowcpuid against kvmbase's conformance suite, plus its own two
differences from plain x86: the CPUID model and the POST-code port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvm_x86.guests import assemble
from kvm_x86.guests import guest_path as x86_guest_path
from kvm_x86.plugin import demo_config as x86_demo_config
from kvm_x86_lowcpuid.config import BRAND
from kvm_x86_lowcpuid.guests import guest_source
from kvm_x86_lowcpuid.plugin import NAME, demo_config
from kvmbase.kvm import kvm_usable
from kvmbase.machine import Machine
from kvmbase.testing import HOST_LACKS, ConformanceTarget
from kvmbase.testing.suite import *  # noqa: F403

EXIT_OK = "guest exited with status 0"
POST_PORT = 0x80


@pytest.fixture(scope="module")
def conformance_target() -> ConformanceTarget:
    return ConformanceTarget(
        arch=NAME,
        guest_config=demo_config,
        end_cause=EXIT_OK,
        output_device="uart0",
        scratch_register="r11",
        round_trip_exceptions={
            "parts.msrs.0x10": "the TSC runs on",
            "parts.xsave.xstate_bv": "KVM marks x87 and SSE state in use once XSAVE is set",
        },
    )


@pytest.fixture(scope="module")
def cpuid_guest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin's cpuid_post guest, built with binutils."""
    usable, why = kvm_usable()
    if not usable:
        pytest.skip(f"{HOST_LACKS}a usable /dev/kvm ({why})")
    out = tmp_path_factory.mktemp("guests") / "cpuid_post.bin"
    try:
        return assemble(guest_source("cpuid_post.S"), out)
    except FileNotFoundError as exc:
        pytest.skip(f"{HOST_LACKS}{exc}")


@pytest.fixture
def lowcpuid_machine(cpuid_guest: Path) -> Iterator[Machine]:
    """An x86-lowcpuid machine running the cpuid_post guest (not yet run)."""
    config = {
        "arch": NAME,
        "vm": {"ram_size": "16MiB"},
        "devices": [{"type": "guest-ops", "name": "guest_ops"}],
        "image": {"path": str(cpuid_guest), "load_address": 0x100000},
    }
    machine = Machine.from_data(config, uart_output="none")
    try:
        yield machine
    finally:
        machine.close()


def brand_of(words: list[int]) -> str:
    raw = b"".join(word.to_bytes(4, "little") for word in words)
    return raw.decode("ascii").split("\0", 1)[0]


def test_guest_sees_the_lower_cpuid_model(lowcpuid_machine: Machine) -> None:
    """From inside the guest (CPUID at CPL0, served by KVM from our table):
    leaf 0 says 7 and the brand is ours; a plain x86 vCPU says otherwise."""
    assert lowcpuid_machine.run().cause == EXIT_OK
    cpu = lowcpuid_machine.cpu
    max_leaf, *brand = cpu.dump("post_codes")["post_codes"]
    assert max_leaf == 7
    assert brand_of(brand) == BRAND
    # The vCPU's table agrees (read back with KVM_GET_CPUID2) ...
    table = cpu.dump("cpuid")["cpuid"]
    assert table["0x0.0"]["eax"] == 7
    assert not {"0x8.0", "0xa.0", "0xb.0"} & set(table)
    # ... and kvm_x86's own model on this host goes higher, with its own brand.
    with Machine.from_data(dict(x86_demo_config()), uart_output="none") as x86:
        x86_table = x86.cpu.dump("cpuid")["cpuid"]
    assert x86_table["0x0.0"]["eax"] > 7
    assert x86_table["0x80000002.0"] != table["0x80000002.0"]


def test_exit_handler_serves_the_post_port_and_nothing_else(
    lowcpuid_machine: Machine,
) -> None:
    assert lowcpuid_machine.run().cause == EXIT_OK
    cpu = lowcpuid_machine.cpu
    assert len(cpu.dump("post_codes")["post_codes"]) == 13  # 1 + 12 brand dwords
    assert cpu.statistics()["num_io"] == 13  # the base still counts the exits
    # The demo's UART and the rest of the bus are kvm_x86's, as before.
    with Machine.from_data(dict(demo_config()), uart_output="none") as demo:
        assert demo.run().cause == EXIT_OK
        assert demo.statistics()[demo.cpu.name]["num_io"] > 0
        assert demo.cpu.dump("post_codes") == {"post_codes": []}
    # Plain x86 CPUs get neither the handler nor the section.
    with Machine.from_data(dict(x86_demo_config()), uart_output="none") as x86:
        assert "post_codes" not in x86.cpu.dump_sections()


def test_demo_reuses_kvm_x86s_image() -> None:
    assert demo_config()["image"]["path"] == str(x86_guest_path("demo.bin"))
