"""Helpers shared by the tests that run x86 guests: guests built from
``tests/kvm_x86/guests`` and the config data of a bare x86 machine.

Importable from any test folder as ``from x86_machines import ...`` (the
``tests`` folder is on pytest's ``pythonpath``).  ``kvm_x86`` is imported
only when a guest is built, so importing this module needs only kvmbase.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conftest import skip_host_lacks

from kvmbase import Machine

GUEST_DIR = Path(__file__).parent / "kvm_x86" / "guests"
LOAD_ADDRESS = 0x100000
BINUTILS = ("as", "ld", "objcopy")
#: what the guests that use the local APIC include before their own source
APIC_INCLUDES = ("ring3.inc", "apic_common.S")


def require_binutils(tools: Sequence[str] = BINUTILS, *, what: str = "test guests") -> None:
    """Skip the running test ("host lacks: ...") if any of ``tools`` is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        skip_host_lacks(f"binutils ({', '.join(missing)}) to build {what}")


def build_guest(
    source: str | Path,
    output: Path,
    symbols: Mapping[str, int],
    *,
    includes: Sequence[str] = ("ring3.inc",),
) -> Path:
    """Assemble ``source`` (a name in :data:`GUEST_DIR`, or a path) with
    ``symbols`` set and ``includes`` (names in :data:`GUEST_DIR`) before it.

    The wrapper that sets the symbols and includes the files is written
    next to ``output``, with the suffix ``.S``.
    """
    from kvm_x86.guests import assemble

    wrapper = output.with_suffix(".S")
    lines = [f".set {name}, {value:#x}" for name, value in symbols.items()]
    lines += [f'.include "{GUEST_DIR / name}"' for name in (*includes, source)]
    wrapper.write_text("\n".join(lines) + "\n")
    return assemble(wrapper, output, link_address=LOAD_ADDRESS)


def machine_config(image: Path, *, entry: int | None = None, **sections: Any) -> dict[str, Any]:
    """Config data of a bare x86 machine (16 MiB) running ``image`` loaded at
    :data:`LOAD_ADDRESS`; ``entry`` if given; ``sections`` added or replacing
    whole sections (``vm=...`` replaces the default one)."""
    image_section: dict[str, Any] = {"path": str(image), "load_address": LOAD_ADDRESS}
    if entry is not None:
        image_section["entry"] = entry
    return {"arch": "x86", "vm": {"ram_size": "16MiB"}, "image": image_section, **sections}


def machine_from(machines: list[Machine], data: dict[str, Any]) -> Machine:
    """``Machine.from_data(data)``, appended to ``machines`` (the fixture's
    list, closed after the test)."""
    machine = Machine.from_data(data)
    machines.append(machine)
    return machine
