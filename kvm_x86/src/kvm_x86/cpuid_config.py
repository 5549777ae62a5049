"""The ``[x86.cpuid]`` section of a machine config: the guest's CPUID model.

The guest's CPUID table starts from what the host's KVM can give
(``KVM_GET_SUPPORTED_CPUID``) and is then shaped by this section: vendor,
family/model/stepping, brand string, and features added or removed by name.

Feature names (:data:`FEATURES`) follow Linux's ``/proc/cpuinfo`` names; each
is one bit of one CPUID register:

====================  ==========  =======  ===  ====================================
names                 leaf        subleaf  reg  bits
====================  ==========  =======  ===  ====================================
fpu vme de pse tsc    0x1         0        edx  0 1 2 3 4
msr pae mce cx8 apic  0x1         0        edx  5 6 7 8 9
sep mtrr pge mca      0x1         0        edx  11 12 13 14
cmov pat pse36        0x1         0        edx  15 16 17
clflush mmx fxsr      0x1         0        edx  19 23 24
sse sse2 ss ht        0x1         0        edx  25 26 27 28
sse3 pclmulqdq        0x1         0        ecx  0 1
monitor ssse3 fma     0x1         0        ecx  3 9 12
cx16 pcid sse4_1      0x1         0        ecx  13 17 19
sse4_2 x2apic movbe   0x1         0        ecx  20 21 22
popcnt                0x1         0        ecx  23
tsc_deadline_timer    0x1         0        ecx  24
aes xsave osxsave     0x1         0        ecx  25 26 27
avx f16c rdrand       0x1         0        ecx  28 29 30
hypervisor            0x1         0        ecx  31
fsgsbase tsc_adjust   0x7         0        ebx  0 1
bmi1 hle avx2 smep    0x7         0        ebx  3 4 5 7
bmi2 erms invpcid     0x7         0        ebx  8 9 10
rtm mpx avx512f       0x7         0        ebx  11 14 16
avx512dq rdseed adx   0x7         0        ebx  17 18 19
smap avx512ifma       0x7         0        ebx  20 21
clflushopt clwb       0x7         0        ebx  23 24
avx512pf avx512er     0x7         0        ebx  26 27
avx512cd sha_ni       0x7         0        ebx  28 29
avx512bw avx512vl     0x7         0        ebx  30 31
avx512vbmi umip pku   0x7         0        ecx  1 2 3
ospke                 0x7         0        ecx  4
avx512_vbmi2          0x7         0        ecx  6
gfni vaes vpclmulqdq  0x7         0        ecx  8 9 10
avx512_vnni           0x7         0        ecx  11
avx512_bitalg         0x7         0        ecx  12
avx512_vpopcntdq      0x7         0        ecx  14
la57 rdpid            0x7         0        ecx  16 22
fsrm                  0x7         0        edx  4
avx512_vp2intersect   0x7         0        edx  8
md_clear serialize    0x7         0        edx  10 14
arch_capabilities     0x7         0        edx  29
avx_vnni avx512_bf16  0x7         1        eax  4 5
xsaveopt xsavec       0xd         1        eax  0 1
xgetbv1 xsaves        0xd         1        eax  2 3
lahf_lm cmp_legacy    0x80000001  0        ecx  0 1
svm extapic           0x80000001  0        ecx  2 3
cr8_legacy abm        0x80000001  0        ecx  4 5
sse4a misalignsse     0x80000001  0        ecx  6 7
3dnowprefetch xop     0x80000001  0        ecx  8 11
fma4 tbm topoext      0x80000001  0        ecx  16 21 22
syscall nx mmxext     0x80000001  0        edx  11 20 22
fxsr_opt pdpe1gb      0x80000001  0        edx  25 26
rdtscp lm             0x80000001  0        edx  27 29
invtsc                0x80000007  0        edx  8
====================  ==========  =======  ===  ====================================

``osxsave`` and ``ospke`` cannot be requested: KVM makes them mirror the
guest's CR4.OSXSAVE and CR4.PKE.  ``lm``, ``pae``, ``nx`` and ``syscall`` cannot
be removed: the machine boots in 64-bit mode with EFER.LME, CR4.PAE and
EFER.SCE set, and KVM checks EFER against the CPUID table.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError


@dataclass(frozen=True)
class FeatureBit:
    """Where one feature flag lives in CPUID."""

    leaf: int
    subleaf: int
    register: Literal["eax", "ebx", "ecx", "edx"]
    bit: int


def _bits(
    leaf: int, subleaf: int, register: Literal["eax", "ebx", "ecx", "edx"], names: str
) -> dict[str, FeatureBit]:
    """``"name:bit name:bit ..."`` -> feature bits of one register."""
    result = {}
    for item in names.split():
        name, bit = item.split(":")
        result[name] = FeatureBit(leaf, subleaf, register, int(bit))
    return result


# fmt: off
FEATURES: Final[dict[str, FeatureBit]] = {
    **_bits(0x1, 0, "edx", "fpu:0 vme:1 de:2 pse:3 tsc:4 msr:5 pae:6 mce:7 cx8:8 apic:9 "
            "sep:11 mtrr:12 pge:13 mca:14 cmov:15 pat:16 pse36:17 clflush:19 mmx:23 "
            "fxsr:24 sse:25 sse2:26 ss:27 ht:28"),
    **_bits(0x1, 0, "ecx", "sse3:0 pclmulqdq:1 monitor:3 ssse3:9 fma:12 cx16:13 pcid:17 "
            "sse4_1:19 sse4_2:20 x2apic:21 movbe:22 popcnt:23 tsc_deadline_timer:24 "
            "aes:25 xsave:26 osxsave:27 avx:28 f16c:29 rdrand:30 hypervisor:31"),
    **_bits(0x7, 0, "ebx", "fsgsbase:0 tsc_adjust:1 bmi1:3 hle:4 avx2:5 smep:7 bmi2:8 "
            "erms:9 invpcid:10 rtm:11 mpx:14 avx512f:16 avx512dq:17 rdseed:18 adx:19 "
            "smap:20 avx512ifma:21 clflushopt:23 clwb:24 avx512pf:26 avx512er:27 "
            "avx512cd:28 sha_ni:29 avx512bw:30 avx512vl:31"),
    **_bits(0x7, 0, "ecx", "avx512vbmi:1 umip:2 pku:3 ospke:4 avx512_vbmi2:6 gfni:8 "
            "vaes:9 vpclmulqdq:10 avx512_vnni:11 avx512_bitalg:12 avx512_vpopcntdq:14 "
            "la57:16 rdpid:22"),
    **_bits(0x7, 0, "edx", "fsrm:4 avx512_vp2intersect:8 md_clear:10 serialize:14 "
            "arch_capabilities:29"),
    **_bits(0x7, 1, "eax", "avx_vnni:4 avx512_bf16:5"),
    **_bits(0xD, 1, "eax", "xsaveopt:0 xsavec:1 xgetbv1:2 xsaves:3"),
    **_bits(0x80000001, 0, "ecx", "lahf_lm:0 cmp_legacy:1 svm:2 extapic:3 cr8_legacy:4 "
            "abm:5 sse4a:6 misalignsse:7 3dnowprefetch:8 xop:11 fma4:16 tbm:21 "
            "topoext:22"),
    **_bits(0x80000001, 0, "edx", "syscall:11 nx:20 mmxext:22 fxsr_opt:25 pdpe1gb:26 "
            "rdtscp:27 lm:29"),
    **_bits(0x80000007, 0, "edx", "invtsc:8"),
}
# fmt: on
"""Feature names the config accepts, and the CPUID bit each one is."""

RUNTIME_FEATURES: Final = {
    "osxsave": "it mirrors the guest's CR4.OSXSAVE (KVM sets it at run time)",
    "ospke": "it mirrors the guest's CR4.PKE (KVM sets it at run time)",
}
"""Features KVM computes while the guest runs: a config may not set them."""

BOOT_FEATURES: Final = {
    "lm": "the machine boots in 64-bit mode (EFER.LME), which needs it",
    "pae": "the machine boots with paging in 64-bit mode (CR4.PAE), which needs it",
    "nx": "the machine's page tables and EFER may use NX, and KVM checks EFER against CPUID",
    "syscall": "the machine boots with EFER.SCE set, and KVM checks EFER against CPUID",
}
"""Features the machine's boot state needs: a config may not remove them."""

DEFAULT_OFF: Final = {
    "x2apic": "KVM emulates x2APIC only with its in-kernel local APIC",
    "tsc_deadline_timer": "KVM emulates the TSC deadline timer only in its in-kernel local APIC",
}
"""Features the default model leaves out even where the host has them, with
why; a config may still add them."""

# The config module's convention for pointing an issue below the field that
# raised it (kvmbase.config turns this context key into the path).
_SUB_LOC: Final = "kvmbase_sub_loc"
_SUB_INPUT: Final = "kvmbase_sub_input"


def _is_vendor(text: str) -> bool:
    return len(text) == 12 and text.isascii() and text.isprintable()


class CpuidConfig(BaseModel):
    """The guest's CPUID model: the host's KVM-supported CPUID, reshaped."""

    model_config = ConfigDict(extra="forbid")

    vendor: str | None = Field(
        default=None,
        description=(
            "Vendor string of leaf 0 (12 ASCII characters, e.g. 'GenuineIntel', "
            "'AuthenticAMD'); the host's when unset."
        ),
    )
    family: int | None = Field(
        default=None,
        ge=0,
        le=0xFF + 0xF,
        description=(
            "CPU family in leaf 1 EAX (0 to 0x10E; 0xF and up use the extended "
            "family field); the host's when unset."
        ),
    )
    model: int | None = Field(
        default=None,
        ge=0,
        le=0xFF,
        description=(
            "CPU model in leaf 1 EAX (0 to 0xFF; above 0xF only with family 6 or "
            "family 0xF and up, which have the extended model field); the host's "
            "when unset."
        ),
    )
    stepping: int | None = Field(
        default=None,
        ge=0,
        le=0xF,
        description="Stepping in leaf 1 EAX (0 to 0xF); the host's when unset.",
    )
    brand: str = Field(
        default="kvmbase virtual x86-64 CPU",
        max_length=47,
        description=(
            "Processor brand string of leaves 0x80000002 to 0x80000004 "
            "(printable ASCII, at most 47 characters)."
        ),
    )
    features: dict[str, bool] = Field(
        default_factory=dict,
        description=(
            "Features to add (true) or remove (false) by name, on top of the "
            "default model (everything the host's KVM supports except x2apic and "
            "tsc_deadline_timer); names as in kvm_x86.cpuid_config.FEATURES."
        ),
    )
    on_unsupported: Literal["error", "mask"] = Field(
        default="error",
        description=(
            "What a requested feature the host's KVM cannot give does: 'error' "
            "refuses the config, 'mask' logs a warning and leaves the feature out."
        ),
    )

    @field_validator("vendor")
    @classmethod
    def _check_vendor(cls, vendor: str | None) -> str | None:
        if vendor is not None and not _is_vendor(vendor):
            raise ValueError(
                f"a vendor string is exactly 12 printable ASCII characters; "
                f"{vendor!r} has {len(vendor)}"
            )
        return vendor

    @field_validator("brand")
    @classmethod
    def _check_brand(cls, brand: str) -> str:
        if not (brand.isascii() and brand.isprintable()):
            raise ValueError("the brand string must be printable ASCII")
        return brand

    @field_validator("features")
    @classmethod
    def _check_features(cls, features: dict[str, bool]) -> dict[str, bool]:
        for name, wanted in features.items():
            if name in RUNTIME_FEATURES:
                raise PydanticCustomError(
                    "cpuid_runtime_feature",
                    "cannot be configured: {why}",
                    {"why": RUNTIME_FEATURES[name], _SUB_LOC: (name,), _SUB_INPUT: wanted},
                )
            if name not in FEATURES:
                close = difflib.get_close_matches(name, FEATURES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PydanticCustomError(
                    "cpuid_unknown_feature",
                    "unknown CPUID feature{hint} (the names are listed in "
                    "kvm_x86.cpuid_config.FEATURES)",
                    {"hint": hint, _SUB_LOC: (name,), _SUB_INPUT: wanted},
                )
            if not wanted and name in BOOT_FEATURES:
                raise PydanticCustomError(
                    "cpuid_boot_feature",
                    "cannot be removed: {why}",
                    {"why": BOOT_FEATURES[name], _SUB_LOC: (name,), _SUB_INPUT: wanted},
                )
        return features

    @model_validator(mode="after")
    def _check_model_encodable(self) -> CpuidConfig:
        # Leaf 1 has 4 bits of model; the extended model field only counts for
        # families 6 and 0xF+ (Intel SDM and AMD APM, CPUID leaf 1).
        if self.model is not None and self.model > 0xF:
            family = self.family
            if family is not None and family != 6 and family < 0xF:
                raise PydanticCustomError(
                    "cpuid_model",
                    "model {model} needs the extended model field, which only "
                    "family 6 or 0xF and up have (family is {family})",
                    {
                        "model": hex(self.model),
                        "family": hex(family),
                        _SUB_LOC: ("model",),
                        _SUB_INPUT: self.model,
                    },
                )
        return self
