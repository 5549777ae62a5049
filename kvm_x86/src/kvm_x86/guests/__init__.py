"""Guest programs shipped with the plugin, and the tool that builds them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

LINK_ADDRESS = 0x100000


def guest_path(name: str) -> Path:
    """The shipped file ``name`` (``demo.bin``, ``demo.S``)."""
    return Path(str(resources.files(__package__).joinpath(name)))


def assemble(source: Path, output: Path, *, link_address: int = LINK_ADDRESS) -> Path:
    """Build a flat binary from a GNU as source with binutils (as, ld, objcopy)."""
    tools = {tool: shutil.which(tool) for tool in ("as", "ld", "objcopy")}
    missing = [tool for tool, path in tools.items() if path is None]
    if missing:
        raise FileNotFoundError(f"binutils missing: {', '.join(missing)} (install binutils)")
    with tempfile.TemporaryDirectory() as work:
        obj = Path(work) / "guest.o"
        elf = Path(work) / "guest.elf"
        run = [str(tools["as"]), "--64", "-I", str(source.parent), "-o", str(obj), str(source)]
        link = [str(tools["ld"]), "-m", "elf_x86_64", "-nostdlib", "-N",
                f"-Ttext={link_address:#x}", "-o", str(elf), str(obj)]
        flat = [str(tools["objcopy"]), "-O", "binary", str(elf), str(output)]
        for command in (run, link, flat):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return output
