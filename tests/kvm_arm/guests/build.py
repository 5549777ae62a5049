"""Build every A32 test guest: ``python tests/kvm_arm/guests/build.py OUT_DIR``.

The variants (name -> source, assembler symbols) are :data:`GUESTS`; the
conftest looks for ``OUT_DIR/<name>.bin``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kvm_arm.guests import assemble

HERE = Path(__file__).resolve().parent
GUESTS: dict[str, tuple[str, dict[str, int]]] = {
    "mmio": ("mmio.S", {}),
    "psci_off": ("psci.S", {}),
    "regs": ("regs.S", {}),
    "count": ("count.S", {}),
    "timer_irq": ("timer_irq.S", {}),
    "timer_irq_long": ("timer_irq.S", {"COUNT": 12}),
    "spi_irq": ("spi_irq.S", {}),
}


def build_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [assemble(HERE / source, out / f"{name}.bin", defines=defines)
            for name, (source, defines) in GUESTS.items()]


if __name__ == "__main__":
    for path in build_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "build"):
        print(path)
