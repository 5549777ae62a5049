"""A32 guest programs shipped with the plugin, and the tool that builds them.

Guests are GNU as sources for ARMv7-A (A32), built with Debian's
``binutils-arm-linux-gnueabihf`` (``arm-linux-gnueabihf-{as,ld,objcopy}``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kvm_armv8.guests import build_flat_binary, find_tools

#: where the AArch32 machine enters an image (RAM base + 0x8000)
LINK_ADDRESS = 0x40008000
CROSS_PREFIX = "arm-linux-gnueabihf-"


def guest_path(name: str) -> Path:
    """The shipped file ``name`` (``demo.bin``, ``demo.S``)."""
    return Path(str(resources.files(__package__).joinpath(name)))


def toolchain() -> dict[str, str] | None:
    """Paths of as, ld and objcopy for 32-bit ARM, or None if missing."""
    return find_tools([CROSS_PREFIX])


def assemble(source: Path, output: Path, *, link_address: int = LINK_ADDRESS,
             defines: dict[str, int] | None = None) -> Path:
    """Build a flat binary from an A32 GNU as source."""
    tools = toolchain()
    if tools is None:
        raise FileNotFoundError(
            f"32-bit ARM binutils missing: {CROSS_PREFIX}as/ld/objcopy "
            "(apt-get install binutils-arm-linux-gnueabihf)"
        )
    return build_flat_binary(tools, source, output, link_address=link_address, defines=defines,
                             as_flags=("-march=armv7ve", "-mfpu=vfpv3", "-meabi=5"))
