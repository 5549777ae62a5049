"""aarch64 wheels of the project's runtime dependencies and of pytest.

The requirements are read from every distribution's ``pyproject.toml``; each
is pinned to the version installed on the host when there is one, so the
guest runs what the host's suite runs.  The wheel set is downloaded once per
requirement set into ``<cache>/wheels/<key>``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from armguest.errors import HarnessError, HostLacksError
from armguest.host import log
from armguest.paths import REPO_ROOT, cache_dir
from armguest.project import distributions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the venv is 3.11
    import tomli as tomllib

#: What the guest needs besides the project's own dependencies.
EXTRA_REQUIREMENTS = ("pytest",)

PIP_TARGET = (
    "--only-binary=:all:",
    "--platform", "manylinux2014_aarch64",
    "--platform", "manylinux_2_17_aarch64",
    "--python-version", "3.11",
    "--implementation", "cp",
    "--abi", "cp311",
    "--abi", "abi3",
    "--abi", "none",
)  # fmt: skip


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _pinned(requirement: str) -> str:
    """``requirement`` pinned to the host's installed version, when it has one."""
    if ";" in requirement:  # environment markers: keep as written, pip evaluates them
        return requirement
    match = _NAME.match(requirement)
    if match is None:
        return requirement
    name = match.group(1)
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return requirement


def requirements(root: Path = REPO_ROOT) -> list[str]:
    """The guest's requirement lines: every distribution's dependencies, plus pytest."""
    own = {_normalize(dist.name) for dist in distributions(root)}
    lines: set[str] = set()
    for dist in distributions(root):
        project = tomllib.loads(dist.pyproject.read_text())["project"]
        for requirement in project.get("dependencies", []):
            match = _NAME.match(requirement)
            if match is not None and _normalize(match.group(1)) not in own:
                lines.add(_pinned(requirement))
    lines.update(_pinned(extra) for extra in EXTRA_REQUIREMENTS)
    return sorted(lines)


@dataclass(frozen=True)
class WheelSet:
    key: str
    folder: Path

    @property
    def wheels(self) -> list[Path]:
        return sorted(self.folder.glob("*.whl"))


def wheel_set(root: Path = REPO_ROOT) -> WheelSet:
    """The aarch64 wheels for :func:`requirements`, downloaded once."""
    wanted = requirements(root)
    key = hashlib.sha256("\n".join([*PIP_TARGET, *wanted]).encode()).hexdigest()[:16]
    folder = cache_dir() / "wheels" / key
    if (folder / ".complete").is_file():
        return WheelSet(key, folder)
    partial = folder.with_name(key + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log("pip download (aarch64, cp311): " + " ".join(wanted))
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
               "--quiet", "--dest", str(partial), *PIP_TARGET, *wanted]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise HostLacksError(f"pip for {sys.executable}") from None
    if result.returncode != 0:
        raise HarnessError(f"pip download failed:\n{result.stdout}{result.stderr}")
    (partial / "requirements.txt").write_text("\n".join(wanted) + "\n")
    (partial / ".complete").touch()
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return WheelSet(key, folder)


def unpack_wheel(wheel: Path, site_packages: Path) -> None:
    """Install ``wheel`` into ``site_packages`` the simple way: unzip, move ``.data``."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site_packages)
    for data in site_packages.glob("*.data"):
        for scheme in ("purelib", "platlib"):
            tree = data / scheme
            if tree.is_dir():
                shutil.copytree(tree, site_packages, dirs_exist_ok=True)
        shutil.rmtree(data)
