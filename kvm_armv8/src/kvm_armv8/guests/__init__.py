"""AArch64 guest programs shipped with the plugin, and the tool that builds them.

Guests are GNU as sources, built with binutils for aarch64: the
cross tools ``aarch64-linux-gnu-{as,ld,objcopy}`` (Debian's
``binutils-aarch64-linux-gnu``) on other hosts, the native ones on arm64.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

#: where the AArch64 machine enters an image (RAM base + 0x80000)
LINK_ADDRESS = 0x40080000
CROSS_PREFIX = "aarch64-linux-gnu-"


def guest_path(name: str) -> Path:
    """The shipped file ``name`` (``demo.bin``, ``demo.S``)."""
    return Path(str(resources.files(__package__).joinpath(name)))


def find_tools(prefixes: list[str]) -> dict[str, str] | None:
    """Paths of as, ld and objcopy under the first prefix that has all three."""
    for prefix in prefixes:
        tools = {tool: shutil.which(prefix + tool) for tool in ("as", "ld", "objcopy")}
        if all(tools.values()):
            return {tool: str(path) for tool, path in tools.items()}
    return None


def build_flat_binary(tools: dict[str, str], source: Path, output: Path, *, link_address: int,
                      defines: dict[str, int] | None = None,
                      as_flags: tuple[str, ...] = ()) -> Path:
    """Assemble ``source``, link it at ``link_address`` and strip it to a flat binary."""
    symbols = [f"--defsym={name}={value}" for name, value in (defines or {}).items()]
    with tempfile.TemporaryDirectory() as work:
        obj = Path(work) / "guest.o"
        elf = Path(work) / "guest.elf"
        steps = [
            [tools["as"], *as_flags, *symbols, "-I", str(source.parent), "-o", str(obj),
             str(source)],
            [tools["ld"], "-nostdlib", "-N", f"-Ttext={link_address:#x}", "-o", str(elf),
             str(obj)],
            [tools["objcopy"], "-O", "binary", str(elf), str(output)],
        ]
        for command in steps:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return output


def toolchain() -> dict[str, str] | None:
    """Paths of as, ld and objcopy for aarch64, or None if missing."""
    return find_tools([CROSS_PREFIX, ""] if platform.machine() == "aarch64" else [CROSS_PREFIX])


def assemble(source: Path, output: Path, *, link_address: int = LINK_ADDRESS,
             defines: dict[str, int] | None = None) -> Path:
    """Build a flat binary from an AArch64 GNU as source."""
    tools = toolchain()
    if tools is None:
        raise FileNotFoundError(
            f"aarch64 binutils missing: {CROSS_PREFIX}as/ld/objcopy "
            "(apt-get install binutils-aarch64-linux-gnu)"
        )
    return build_flat_binary(tools, source, output, link_address=link_address, defines=defines)
