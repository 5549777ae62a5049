"""A32 guest programs shipped with the plugin, and the tool that builds them.

Guests are GNU as sources for ARMv7-A (A32), built with Debian's
``binutils-arm-linux-gnueabihf`` (``arm-linux-gnueabihf-{as,ld,objcopy}``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

#: where the AArch32 machine enters an image (RAM base + 0x8000)
LINK_ADDRESS = 0x40008000
CROSS_PREFIX = "arm-linux-gnueabihf-"


def guest_path(name: str) -> Path:
    """The shipped file ``name`` (``demo.bin``, ``demo.S``)."""
    return Path(str(resources.files(__package__).joinpath(name)))


def toolchain() -> dict[str, str] | None:
    """Paths of as, ld and objcopy for 32-bit ARM, or None if missing."""
    tools = {tool: shutil.which(CROSS_PREFIX + tool) for tool in ("as", "ld", "objcopy")}
    if all(tools.values()):
        return {tool: str(path) for tool, path in tools.items()}
    return None


def assemble(source: Path, output: Path, *, link_address: int = LINK_ADDRESS,
             defines: dict[str, int] | None = None) -> Path:
    """Build a flat binary from an A32 GNU as source."""
    tools = toolchain()
    if tools is None:
        raise FileNotFoundError(
            f"32-bit ARM binutils missing: {CROSS_PREFIX}as/ld/objcopy "
            "(apt-get install binutils-arm-linux-gnueabihf)"
        )
    symbols = [f"--defsym={name}={value}" for name, value in (defines or {}).items()]
    with tempfile.TemporaryDirectory() as work:
        obj = Path(work) / "guest.o"
        elf = Path(work) / "guest.elf"
        steps = [
            [tools["as"], "-march=armv7ve", "-mfpu=vfpv3", "-meabi=5", *symbols,
             "-I", str(source.parent), "-o", str(obj), str(source)],
            [tools["ld"], "-nostdlib", "-N", f"-Ttext={link_address:#x}", "-o", str(elf),
             str(obj)],
            [tools["objcopy"], "-O", "binary", str(elf), str(output)],
        ]
        for command in steps:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return output
