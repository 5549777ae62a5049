"""Build every test guest: ``python tests/kvm_armv8/guests/build.py OUT_DIR``.

The variants (name -> source, assembler symbols) are :data:`GUESTS`; the
conftest looks for ``OUT_DIR/<name>.bin``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kvm_armv8.guests import assemble

HERE = Path(__file__).resolve().parent
GUESTS: dict[str, tuple[str, dict[str, int]]] = {
    "mmio": ("mmio.S", {}),
    "psci_off": ("psci.S", {}),
    "psci_reset": ("psci.S", {"RESET": 1}),
    "spin": ("spin.S", {}),
    "regs": ("regs.S", {}),
    "timer_irq": ("timer_irq.S", {}),
    "timer_irq_long": ("timer_irq.S", {"COUNT": 12}),
    "spi_irq": ("spi_irq.S", {}),
    "ppi_irq_cpu1": ("spi_irq.S", {"PPI": 1, "TARGET": 1}),
}


def build_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for name, (source, defines) in GUESTS.items():
        built.append(assemble(HERE / source, out / f"{name}.bin", defines=defines))
    return built


if __name__ == "__main__":
    for path in build_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "build"):
        print(path)
