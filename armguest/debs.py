"""Debian's arm64 packages: the kernel, the guest's Python, the kernel headers.

Each is downloaded once and extracted once into the cache, under a folder
named after the .deb file (name, version, architecture), so a new Debian
version lands beside the old one instead of being mixed with it.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from armguest import host
from armguest.errors import HarnessError
from armguest.paths import cache_dir

#: The meta package that names the current cloud kernel's ABI (6.1.0-NN).
KERNEL_META = "linux-image-cloud-arm64"

#: The guest's userland: Debian's arm64 Python 3.11, its libraries and busybox.
ROOTFS_PACKAGES: tuple[str, ...] = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libc6",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libgcc-s1",  # Rust and C++ extension modules (pydantic-core)
    "libbz2-1.0",
    "liblzma5",
    "busybox-static",
)

HEADERS_PACKAGE = "linux-libc-dev"


def _debs_dir() -> Path:
    return cache_dir() / "debs"


def _extracted(deb: Path, kind: str, keep: str = "") -> Path:
    """``deb`` unpacked under ``<cache>/<kind>/<deb stem>`` (once).

    With ``keep``, only that top-level folder is kept (the kernel's ``boot``:
    its 80 MB of modules are never used).
    """
    target = cache_dir() / kind / deb.stem
    if (target / ".complete").is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    host.extract_deb(deb, partial)
    if keep:
        for entry in partial.iterdir():
            if entry.name == keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


@dataclass(frozen=True)
class Kernel:
    """An extracted arm64 kernel image."""

    package: str  # the .deb's file name
    image: Path  # uncompressed arm64 Image, for ``-kernel``
    config: Path


def kernel_package_name() -> str:
    """The versioned kernel package the cloud meta package depends on now."""
    (meta,) = host.resolve_packages([KERNEL_META])
    match = re.search(r"\b(linux-image-[0-9][^\s,(]*-cloud-arm64)\b", meta.depends)
    if match is None:
        raise HarnessError(f"{KERNEL_META} depends on no cloud kernel: {meta.depends!r}")
    return match.group(1)


def kernel() -> Kernel:
    """Debian's current arm64 cloud kernel, downloaded and extracted."""
    ((package, deb),) = host.fetch_debs([kernel_package_name()], _debs_dir())
    root = _extracted(deb, "kernel", keep="boot")
    images = sorted((root / "boot").glob("vmlinuz-*"))
    configs = sorted((root / "boot").glob("config-*"))
    if not images or not configs:
        raise HarnessError(f"{package.filename} holds no boot/vmlinuz-* and config-*")
    return Kernel(package.filename, images[0], configs[0])


def rootfs_debs() -> list[tuple[host.DebPackage, Path]]:
    """The userland packages, downloaded (not extracted: the image builder does that)."""
    return host.fetch_debs(list(ROOTFS_PACKAGES), _debs_dir())


@dataclass(frozen=True)
class Arm64Headers:
    """Debian's arm64 ``linux-libc-dev``, extracted.

    ``include`` holds ``linux/kvm.h``; ``arch_include`` holds the arm64
    ``asm/kvm.h``.  Compile with :meth:`cflags` so the arm64 ``asm/`` comes
    before the host's own.
    """

    package: str
    include: Path
    arch_include: Path

    def cflags(self) -> list[str]:
        return ["-I", str(self.arch_include), "-I", str(self.include)]


def arm64_linux_headers() -> Arm64Headers:
    """Debian's arm64 kernel headers (``linux-libc-dev:arm64``), extracted in the cache."""
    ((package, deb),) = host.fetch_debs([HEADERS_PACKAGE], _debs_dir())
    root = _extracted(deb, "headers")
    include = root / "usr" / "include"
    arch_include = include / "aarch64-linux-gnu"
    if (
        not (include / "linux" / "kvm.h").is_file()
        or not (arch_include / "asm" / "kvm.h").is_file()
    ):
        raise HarnessError(f"{package.filename} has no linux/kvm.h and arm64 asm/kvm.h")
    return Arm64Headers(package.filename, include, arch_include)
