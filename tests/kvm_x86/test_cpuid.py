"""CPUID: the table a guest reads, how a config shapes it, and how it travels.

The guest (``guests/cpuid.S``) asks the query port for (leaf, sub-leaf)
pairs, executes ``cpuid`` for each and reports EAX, EBX, ECX, EDX on the
report port.  At CPL0 on this PVM host, ``cpuid`` runs in KVM's instruction
emulator, which answers from the vCPU's table; at CPL3 PVM does not
intercept it and the guest gets the host CPU's own answer (VMX and SVM
intercept it at every CPL, so there it is the table again).
"""

from __future__ import annotations

import ctypes
import logging
import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from x86_machines import build_guest, machine_config, machine_from, require_binutils

from kvm_x86.config import X86Config
from kvm_x86.cpuid import (
    EXTENDED_BASE,
    REGISTERS,
    RUNTIME_FIELDS,
    CpuidTable,
    apply_cpuid_config,
    build_cpuid,
    decode_signature,
    differences,
    encode_signature,
    kvm_view,
    offered_table,
    supported_table,
    unsupported_bits,
)
from kvm_x86.cpuid_config import FEATURES, CpuidConfig
from kvm_x86.parts.cpuid import Cpuid
from kvmbase import Machine
from kvmbase.config import ConfigError, validate_machine_config
from kvmbase.errors import ConfigurationError
from kvmbase.kvm import Kvm, host_flavour
from kvmbase.sim.bus import Device

QUERY_PORT, REPORT_PORT = 0xE0, 0xE4
END = 0xFFFFFFFF
Key = tuple[int, int]
Regs = tuple[int, int, int, int]

CUSTOM = {
    "vendor": "GenuineIntel",
    "family": 6,
    "model": 0x55,  # needs the extended model field
    "stepping": 7,
    "brand": "kvmbase test CPU, model 85 @ 1.00GHz",
    "features": {"x2apic": True, "lahf_lm": False, "cx16": False},
}
# Features a host's KVM may well lack; the error tests use the first it lacks.
RARE_FEATURES = ("monitor", "la57", "svm", "xop", "fma4", "tbm", "avx512pf", "avx512er")
PVM = host_flavour() == "kvm_pvm"


# -- guests, devices, machines ---------------------------------------------------
@pytest.fixture(scope="session")
def cpuid_guests(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """guests/cpuid.S built for CPL0 and CPL3."""
    require_binutils()
    out = tmp_path_factory.mktemp("cpuid-guests")
    return {
        ring: build_guest("cpuid.S", out / f"cpuid-ring{ring}.bin", {"RING": ring})
        for ring in (0, 3)
    }


class QueryDevice(Device):
    """Answers the guest's dword reads with leaf, sub-leaf, ..., END."""

    def __init__(self, keys: list[Key]) -> None:
        super().__init__("cpuid-query")
        self.queue = [value for key in keys for value in key] + [END]

    def read(self, offset: int, size: int) -> int:
        assert size == 4 and self.queue, "unplanned query"
        return self.queue.pop(0)

    def write(self, offset: int, size: int, value: int) -> None:
        raise AssertionError("the guest writes no query")

    def serialize(self) -> dict[str, Any]:
        return {"queue": list(self.queue)}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.queue = list(state["queue"])


class ReportDevice(Device):
    """Collects the guest's dword reports; may stop the run after N of them."""

    def __init__(self, machine: Machine, stop_after: int | None = None) -> None:
        super().__init__("cpuid-report")
        self.values: list[int] = []
        self.machine = machine
        self.stop_after = stop_after

    def read(self, offset: int, size: int) -> int:
        raise AssertionError("the guest reads no report")

    def write(self, offset: int, size: int, value: int) -> None:
        assert size == 4
        self.values.append(value)
        if len(self.values) == self.stop_after:
            self.machine.stop("report limit")

    def serialize(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.values = list(state["values"])

    def seen(self, keys: list[Key]) -> dict[Key, Regs]:
        """The reports, four registers per key of ``keys``."""
        assert len(self.values) == 4 * len(keys)
        return {key: tuple(self.values[4 * i : 4 * i + 4]) for i, key in enumerate(keys)}  # type: ignore[misc]


def attach(machine: Machine, keys: list[Key], stop_after: int | None = None) -> ReportDevice:
    machine.add_device(QueryDevice(keys), machine.port_address(QUERY_PORT), 4)
    report = ReportDevice(machine, stop_after)
    machine.add_device(report, machine.port_address(REPORT_PORT), 4)
    return report


def new_machine(binary: Path, machines: list[Machine], cpuid: CpuidConfig | None = None) -> Machine:
    machine = machine_from(machines, machine_config(binary))
    if cpuid is not None:
        apply_cpuid_config(machine, cpuid)  # until setup_machine does it
    return machine


def guest_view(machine: Machine, keys: list[Key]) -> dict[Key, Regs]:
    report = attach(machine, keys)
    assert machine.run().cause == "all CPUs halted"
    return report.seen(keys)


def as_dict(table: CpuidTable) -> dict[Key, Regs]:
    return {entry.key: entry.registers() for entry in table}


def thread_table(machine: Machine) -> CpuidTable:
    return CpuidTable.from_data(machine.cpu.thread.parts["cpuid"])  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def kvm() -> Iterator[Kvm]:
    handle = Kvm()
    yield handle
    handle.close()


def custom_config(kvm: Kvm, **changes: Any) -> CpuidConfig:
    if not offered_table(kvm).has("x2apic"):
        pytest.skip("host lacks: x2apic in KVM_GET_SUPPORTED_CPUID")
    return CpuidConfig.model_validate({**CUSTOM, **changes})


def rare_feature(kvm: Kvm) -> str:
    offered = offered_table(kvm)
    for name in RARE_FEATURES:
        if not offered.has(name):
            return name
    pytest.skip(f"host lacks: a CPUID feature its KVM cannot give (it has {RARE_FEATURES})")


# -- the host CPU's own CPUID, executed in this process ---------------------------
# void f(uint32_t leaf, uint32_t subleaf, uint32_t out[4]), System V ABI:
#   push %rbx; mov %edi,%eax; mov %esi,%ecx; mov %rdx,%r8; cpuid;
#   mov %eax,(%r8); mov %ebx,4(%r8); mov %ecx,8(%r8); mov %edx,12(%r8);
#   pop %rbx; ret
_NATIVE_CPUID = bytes.fromhex("53 89f8 89f1 4989d0 0fa2 418900 41895804 41894808 4189500c 5b c3")


def native_cpuid(keys: list[Key]) -> dict[Key, Regs]:
    code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    try:
        code.write(_NATIVE_CPUID)
        holder = ctypes.c_char.from_buffer(code)
        function = ctypes.CFUNCTYPE(
            None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32 * 4)
        )(ctypes.addressof(holder))
        out = (ctypes.c_uint32 * 4)()
        result: dict[Key, Regs] = {}
        for leaf, subleaf in keys:
            function(leaf, subleaf, ctypes.byref(out))
            result[(leaf, subleaf)] = (out[0], out[1], out[2], out[3])
        del function, holder
    finally:
        code.close()
    return result


def without_cpu_ids(view: dict[Key, Regs]) -> dict[Key, Regs]:
    """Leave out the fields that name the CPU the code ran on (APIC IDs)."""
    result = {}
    for key, (eax, ebx, ecx, edx) in view.items():
        if key == (1, 0):
            ebx &= 0x00FFFFFF
        elif key[0] == 0xB:
            edx = 0
        result[key] = (eax, ebx, ecx, edx)
    return result


# -- the table ---------------------------------------------------------------------
@pytest.mark.kvm
def test_default_table_has_every_leaf_up_to_the_advertised_maxima(kvm: Kvm) -> None:
    table = build_cpuid(kvm, CpuidConfig())
    supported = supported_table(kvm)
    assert table.max_standard_leaf == min(supported[0, 0].eax, 0xD)
    assert table.max_extended_leaf == min(supported[EXTENDED_BASE, 0].eax, 0x80000008)
    assert table.missing_leaves() == []
    leaves = table.leaves()
    assert leaves == [
        *range(table.max_standard_leaf + 1),
        *range(EXTENDED_BASE, table.max_extended_leaf + 1),
    ]
    # Sub-leaves a guest enumerates: leaf 7 up to 7.0 EAX; 0xB to its end
    # marker (level type 0); 0xD for every component of XCR0 and IA32_XSS.
    assert [e.index for e in table if e.function == 7] == list(range(table[7, 0].eax + 1))
    levels = [e for e in table if e.function == 0xB]
    assert [(e.index, e.ecx >> 8 & 0xFF) for e in levels] == [(0, 1), (1, 2), (2, 0)]
    xsave = table[0xD, 0]
    components = xsave.eax | xsave.edx << 32 | table[0xD, 1].ecx | table[0xD, 1].edx << 32
    assert [e.index for e in table if e.function == 0xD] == [0, 1] + [
        bit for bit in range(2, 64) if components >> bit & 1
    ]
    # Nothing beyond what the host offers; the default leaves out what needs
    # KVM's in-kernel local APIC, and the bits KVM derives from CR4.
    assert unsupported_bits(table, offered_table(kvm)) == []
    for name in ("x2apic", "tsc_deadline_timer", "osxsave", "ospke"):
        assert not table.has(name), name
    assert table.vendor == supported_vendor(supported)
    assert table.brand == "kvmbase virtual x86-64 CPU"
    # One logical processor with APIC ID 0.
    assert table[1, 0].ebx >> 16 == 0x01


def supported_vendor(table: CpuidTable) -> str:
    return vendor_of(table[0, 0].registers())


def vendor_of(leaf0: Regs) -> str:
    """The vendor string in leaf 0's EBX, EDX, ECX."""
    _, ebx, ecx, edx = leaf0
    return b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx)).decode()


@pytest.mark.kvm
def test_table_is_what_kvm_keeps(kvm: Kvm) -> None:
    """The table is set on a scratch vCPU first; KVM holds it unchanged."""
    for config in (CpuidConfig(), custom_config(kvm)):
        table = build_cpuid(kvm, config)
        assert differences(table, kvm_view(kvm, table)) == []


@pytest.mark.kvm
def test_custom_identity_and_features(kvm: Kvm) -> None:
    default = build_cpuid(kvm, CpuidConfig())
    table = build_cpuid(kvm, custom_config(kvm), apic_id=3)
    assert table.vendor == "GenuineIntel"
    assert table.signature == (6, 0x55, 7)
    assert table[1, 0].eax == 0x50657  # extended model 5, family 6, model 5, stepping 7
    assert table.brand == "kvmbase test CPU, model 85 @ 1.00GHz"
    assert table.has("x2apic") and not default.has("x2apic")
    assert default.has("lahf_lm") and not table.has("lahf_lm")
    assert default.has("cx16") and not table.has("cx16")
    # GenuineIntel: 0x80000000 and 0x80000001 EAX do not repeat vendor and signature.
    assert table[EXTENDED_BASE, 0].registers()[1:] == (0, 0, 0)
    assert table[EXTENDED_BASE + 1, 0].eax == 0
    assert table[1, 0].ebx >> 24 == 3 and table[0xB, 0].edx == 3
    # Everything else is the default model.
    changed = {key for key, regs in as_dict(table).items() if as_dict(default).get(key) != regs}
    assert changed == {
        (0, 0), (1, 0), (0xB, 0), (0xB, 1), (0xB, 2),
        (EXTENDED_BASE, 0), (EXTENDED_BASE + 1, 0),
        (EXTENDED_BASE + 2, 0), (EXTENDED_BASE + 3, 0), (EXTENDED_BASE + 4, 0),
    }  # fmt: skip


def test_signature_encoding_round_trips() -> None:
    for family, model, stepping, eax in [
        (6, 0x55, 7, 0x00050657),
        (0x1A, 0x02, 1, 0x00B00F21),
        (0xF, 0x6B, 2, 0x00060FB2),
        (5, 0x4, 3, 0x00000543),
    ]:
        assert encode_signature(family, model, stepping) == eax
        assert decode_signature(eax) == (family, model, stepping)


# -- what the guest reads -----------------------------------------------------------
@pytest.mark.kvm
def test_guest_at_cpl0_reads_exactly_the_default_table(
    cpuid_guests: dict[int, Path], machines: list[Machine], kvm: Kvm
) -> None:
    machine = new_machine(cpuid_guests[0], machines)  # no table: the part's default
    expected = build_cpuid(machine.vm.kvm, CpuidConfig(), apic_id=machine.cpu.vcpu_id)
    keys = list(as_dict(expected))
    assert guest_view(machine, keys) == as_dict(expected)
    # The part recorded the default in the thread context, for checkpoints.
    assert thread_table(machine) == expected


@pytest.mark.kvm
def test_guest_at_cpl0_reads_exactly_a_custom_table(
    cpuid_guests: dict[int, Path], machines: list[Machine], kvm: Kvm
) -> None:
    machine = new_machine(cpuid_guests[0], machines, custom_config(kvm))
    table = thread_table(machine)
    keys = list(as_dict(table))
    seen = guest_view(machine, keys)
    assert seen == as_dict(table)
    assert vendor_of(seen[(0, 0)]) == "GenuineIntel"
    assert decode_signature(seen[(1, 0)][0]) == (6, 0x55, 7)
    assert seen[(1, 0)][2] >> 21 & 1 == 1  # x2apic added
    assert seen[(1, 0)][2] >> 13 & 1 == 0  # cx16 removed
    assert seen[(EXTENDED_BASE + 1, 0)][2] & 1 == 0  # lahf_lm removed
    # The vCPU's own table (KVM_GET_CPUID2) is the table too.
    dumped = machine.cpu.dump("cpuid")["cpuid"]
    assert {
        key: tuple(dumped[f"{key[0]:#x}.{key[1]}"][r] for r in REGISTERS) for key in keys
    } == as_dict(table)


@pytest.mark.kvm
def test_guest_at_cpl3_reads_what_the_host_intercepts(
    cpuid_guests: dict[int, Path], machines: list[Machine], kvm: Kvm
) -> None:
    machine = new_machine(cpuid_guests[3], machines, custom_config(kvm))
    table = thread_table(machine)
    keys = list(as_dict(table))
    seen = guest_view(machine, keys)
    if PVM:
        # PVM runs CPL3 natively and does not intercept CPUID there: the guest
        # reads the host CPU's own values, not its vendor or family.
        assert without_cpu_ids(seen) == without_cpu_ids(native_cpuid(keys))
        assert seen[(0, 0)][1:] != table[0, 0].registers()[1:]
    else:
        assert seen == as_dict(table)


# -- config errors ------------------------------------------------------------------
@pytest.mark.kvm
def test_feature_the_host_cannot_give_is_a_config_error(kvm: Kvm) -> None:
    name = rare_feature(kvm)
    with pytest.raises(ConfigError) as caught:
        build_cpuid(kvm, CpuidConfig(features={name: True, "x2apic": False}))
    assert [str(issue) for issue in caught.value.errors] == [
        f"x86.cpuid.features.{name}: the host's KVM cannot give this feature (got True)"
    ]


@pytest.mark.kvm
def test_feature_the_host_cannot_give_is_masked_with_a_warning(
    kvm: Kvm, caplog: pytest.LogCaptureFixture
) -> None:
    name = rare_feature(kvm)
    with caplog.at_level(logging.WARNING, logger="kvm_x86.cpuid"):
        table = build_cpuid(kvm, CpuidConfig(features={name: True}, on_unsupported="mask"))
    assert not table.has(name)
    assert table == build_cpuid(kvm, CpuidConfig())
    assert [record.getMessage() for record in caplog.records] == [
        f"x86.cpuid.features.{name}: the host's KVM cannot give this feature; "
        "the guest will not have it"
    ]


@pytest.mark.kvm
def test_feature_the_host_cannot_hide(kvm: Kvm, caplog: pytest.LogCaptureFixture) -> None:
    """PVM gives guests the host's own SSE2 bit whatever the table says."""
    config = {"features": {"sse2": False}}
    if not PVM:
        assert not build_cpuid(kvm, CpuidConfig.model_validate(config)).has("sse2")
        return
    with pytest.raises(ConfigError) as caught:
        build_cpuid(kvm, CpuidConfig.model_validate(config))
    assert [issue.path for issue in caught.value.errors] == ["x86.cpuid.features.sse2"]
    assert "cannot hide this feature" in caught.value.errors[0].message
    with caplog.at_level(logging.WARNING, logger="kvm_x86.cpuid"):
        table = build_cpuid(kvm, CpuidConfig.model_validate({**config, "on_unsupported": "mask"}))
    assert table.has("sse2")
    assert "the guest will have it" in caplog.records[0].getMessage()


class _X86WithCpuid(X86Config):
    """The [x86] section as it will be once it carries [x86.cpuid]."""

    cpuid: CpuidConfig = Field(default_factory=CpuidConfig, description="CPUID model.")


@pytest.mark.parametrize(
    ("cpuid", "expected"),
    [
        ({"features": {"avx513": True}},
         "x86.cpuid.features.avx513: unknown CPUID feature; did you mean 'avx512f'? (the names "
         "are listed in kvm_x86.cpuid_config.FEATURES) (got True)"),
        ({"features": {"osxsave": True}},
         "x86.cpuid.features.osxsave: cannot be configured: it mirrors the guest's CR4.OSXSAVE "
         "(KVM sets it at run time) (got True)"),
        ({"features": {"lm": False}},
         "x86.cpuid.features.lm: cannot be removed: the machine boots in 64-bit mode (EFER.LME), "
         "which needs it (got False)"),
        ({"vendor": "Intel"},
         "x86.cpuid.vendor: a vendor string is exactly 12 printable ASCII characters; 'Intel' "
         "has 5 (got 'Intel')"),
        ({"family": 5, "model": 0x17},
         "x86.cpuid.model: model 0x17 needs the extended model field, which only family 6 or "
         "0xF and up have (family is 0x5) (got 23)"),
        ({"stepping": 16},
         "x86.cpuid.stepping: Input should be less than or equal to 15 (got 16)"),
        ({"on_unsupported": "ignore"},
         "x86.cpuid.on_unsupported: Input should be 'error' or 'mask' (got 'ignore')"),
        ({"brand": "x" * 48},
         "x86.cpuid.brand: String should have at most 47 characters (got 'xxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxx')"),
    ],
)  # fmt: skip
def test_config_errors_name_the_field(cpuid: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_machine_config({"arch": "x86", "x86": {"cpuid": cpuid}}, {"x86": _X86WithCpuid})
    assert [str(issue) for issue in caught.value.errors] == [expected]


def test_every_feature_name_is_one_bit() -> None:
    places = [(b.leaf, b.subleaf, b.register, b.bit) for b in FEATURES.values()]
    assert len(set(places)) == len(places)
    assert all(0 <= b.bit < 32 and b.register in REGISTERS for b in FEATURES.values())
    for name in ("fpu", "tsc", "msr", "pae", "apic", "sep", "mtrr", "pge", "cmov", "pat",
                 "clflush", "mmx", "fxsr", "sse", "sse2", "sse3", "ssse3", "sse4_1", "sse4_2",
                 "popcnt", "xsave", "osxsave", "avx", "avx2", "bmi1", "bmi2", "fma", "aes",
                 "rdrand", "x2apic", "lm", "nx", "syscall", "rdtscp", "avx512f"):  # fmt: skip
        assert name in FEATURES
    assert FEATURES["avx2"] == FEATURES["avx2"].__class__(7, 0, "ebx", 5)
    assert FEATURES["lm"] == FEATURES["lm"].__class__(0x80000001, 0, "edx", 29)
    assert set(RUNTIME_FIELDS) >= {(1, 0, "ecx"), (0xD, 0, "ebx")}


# -- the state part ---------------------------------------------------------------
class _NoExtCpuid:
    cap_extended_cpuid = False


def test_part_is_skipped_without_ext_cpuid() -> None:
    assert Cpuid.supported(_NoExtCpuid()) == (  # type: ignore[arg-type]
        False,
        "the host's KVM lacks KVM_CAP_EXT_CPUID (KVM_SET_CPUID2)",
    )


@pytest.mark.kvm
def test_part_refuses_a_table_with_features_the_host_lacks(
    cpuid_guests: dict[int, Path], machines: list[Machine], kvm: Kvm
) -> None:
    name = rare_feature(kvm)
    machine = new_machine(cpuid_guests[0], machines, CpuidConfig())
    where = FEATURES[name]
    data = machine.cpu.thread.parts["cpuid"]  # type: ignore[attr-defined]
    for entry in data:
        if (entry["function"], entry["index"]) == (where.leaf, where.subleaf):
            entry[where.register] |= 1 << where.bit
    attach(machine, [])
    with pytest.raises(ConfigurationError, match=rf"cannot give: .*\({name}\)"):
        machine.run()


@pytest.mark.kvm
def test_part_refuses_a_table_kvm_would_change(
    cpuid_guests: dict[int, Path], machines: list[Machine], kvm: Kvm
) -> None:
    """A table from another host, which this host's KVM would not keep."""
    if not PVM:
        pytest.skip("host lacks: a KVM that rewrites CPUID tables (PVM)")
    machine = new_machine(cpuid_guests[0], machines, CpuidConfig())
    for entry in machine.cpu.thread.parts["cpuid"]:  # type: ignore[attr-defined]
        if (entry["function"], entry["index"]) == (1, 0):
            entry["edx"] &= ~(1 << FEATURES["sse2"].bit)
    attach(machine, [])
    with pytest.raises(ConfigurationError, match=r"does not keep .*leaf 0x1\.0 edx"):
        machine.run()


# -- checkpoints and CPU switches ---------------------------------------------------------
@pytest.mark.kvm
def test_checkpoint_restore_keeps_the_table(
    cpuid_guests: dict[int, Path], machines: list[Machine], kvm: Kvm, tmp_path: Path
) -> None:
    first = new_machine(cpuid_guests[0], machines, custom_config(kvm))
    table = thread_table(first)
    keys = [(0, 0), (1, 0), (0, 0), (EXTENDED_BASE + 2, 0)]
    attach(first, keys, stop_after=8)
    assert first.run().cause == "report limit"
    checkpoint = first.checkpoint(tmp_path / "ckpt")
    first.close()

    def devices(machine: Machine) -> None:
        attach(machine, [])  # their state comes from the checkpoint

    second = Machine.restore(checkpoint, before_load=devices)
    machines.append(second)
    assert thread_table(second) == table
    assert second.run().cause == "all CPUs halted"
    seen = second.devices["cpuid-report"].seen(keys)  # type: ignore[attr-defined]
    # The two leaves read after the restore come from the restored table.
    assert seen == {key: table[key].registers() for key in keys}
    assert vendor_of(seen[(0, 0)]) == "GenuineIntel"


@pytest.mark.kvm
def test_switched_to_cpu_gets_the_same_table(
    cpuid_guests: dict[int, Path], machines: list[Machine], kvm: Kvm
) -> None:
    machine = new_machine(cpuid_guests[0], machines, custom_config(kvm))
    table = thread_table(machine)
    keys = [(0, 0), (1, 0), (0, 0), (1, 0)]
    report = attach(machine, keys, stop_after=8)
    old, new = machine.cpu, machine.new_cpu("cpu1")
    assert machine.run().cause == "report limit"
    machine.switch_cpus(old, new)
    assert new.vcpu_id != old.vcpu_id
    assert machine.run().cause == "all CPUs halted"
    assert report.seen(keys) == {key: table[key].registers() for key in keys}
    assert CpuidTable.from_data(new.thread.parts["cpuid"]) == table  # type: ignore[attr-defined]


@pytest.mark.kvm
def test_each_cpu_gets_its_own_apic_id(
    cpuid_guests: dict[int, Path], machines: list[Machine]
) -> None:
    machine = new_machine(cpuid_guests[0], machines)
    machine.new_cpu("cpu1")
    apply_cpuid_config(machine, CpuidConfig())
    first, second = (
        CpuidTable.from_data(cpu.thread.parts["cpuid"])  # type: ignore[attr-defined]
        for cpu in machine.cpus
    )
    assert [cpu.vcpu_id for cpu in machine.cpus] == [0, 1]
    assert (first[1, 0].ebx >> 24, first[0xB, 1].edx) == (0, 0)
    assert (second[1, 0].ebx >> 24, second[0xB, 1].edx) == (1, 1)
    assert second.with_apic_id(0) == first
    # A CPU added later gets the table on its own.
    third = machine.new_cpu("cpu2")
    apply_cpuid_config(machine, CpuidConfig(), cpus=[third])
    assert CpuidTable.from_data(third.thread.parts["cpuid"]) == first.with_apic_id(2)  # type: ignore[attr-defined]
