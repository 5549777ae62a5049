"""The project's own distributions, installed into the guest as plain source trees.

Every folder at the repository root with a ``pyproject.toml`` that declares a
``[project]`` is a distribution (kvmbase, kvm_x86, kvm_armv8, kvm_arm...).
Its ``src/`` packages are copied as they are, and a generated ``.dist-info``
carries the metadata and ``entry_points.txt``, so that entry-point discovery
(group ``kvmbase``) and ``importlib.metadata.version`` work inside the guest
exactly as for an installed wheel.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from armguest.paths import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the venv is 3.11
    import tomli as tomllib

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache")


@dataclass(frozen=True)
class Distribution:
    folder: Path
    name: str
    version: str
    data: dict[str, object]

    @property
    def pyproject(self) -> Path:
        return self.folder / "pyproject.toml"

    @property
    def packages(self) -> list[Path]:
        """The top-level import packages (and modules) under ``src/``."""
        src = self.folder / "src"
        if not src.is_dir():
            return []
        return sorted(
            path
            for path in src.iterdir()
            if (path.is_dir() and (path / "__init__.py").is_file())
            or (path.suffix == ".py" and path.is_file())
        )


def distributions(root: Path = REPO_ROOT) -> list[Distribution]:
    """The distributions at the repository root, by folder name."""
    found: list[Distribution] = []
    for pyproject in sorted(root.glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        project = data.get("project")
        if not isinstance(project, dict) or "name" not in project:
            continue
        found.append(
            Distribution(
                folder=pyproject.parent,
                name=str(project["name"]),
                version=str(project.get("version", "0")),
                data=project,
            )
        )
    return found


def _entry_points_txt(project: dict[str, object]) -> str:
    groups: dict[str, dict[str, str]] = {}
    scripts = project.get("scripts")
    if isinstance(scripts, dict):
        groups["console_scripts"] = {str(k): str(v) for k, v in scripts.items()}
    entry_points = project.get("entry-points")
    if isinstance(entry_points, dict):
        for group, entries in entry_points.items():
            if isinstance(entries, dict):
                groups[str(group)] = {str(k): str(v) for k, v in entries.items()}
    lines: list[str] = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {target}" for name, target in entries.items())
        lines.append("")
    return "\n".join(lines)


def install_source_tree(dist: Distribution, site_packages: Path, bin_dir: Path) -> None:
    """Copy ``dist``'s packages into ``site_packages`` with a generated ``.dist-info``.

    Console scripts become small launchers in ``bin_dir``.
    """
    site_packages.mkdir(parents=True, exist_ok=True)
    for package in dist.packages:
        target = site_packages / package.name
        if package.is_dir():
            shutil.copytree(package, target, ignore=_IGNORED, dirs_exist_ok=True)
        else:
            shutil.copy2(package, target)
    normalized = dist.name.replace("-", "_")
    info = site_packages / f"{normalized}-{dist.version}.dist-info"
    info.mkdir(exist_ok=True)
    requires = dist.data.get("dependencies", [])
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {dist.name}",
        f"Version: {dist.version}",
        f"Summary: {dist.data.get('description', '')}",
    ]
    if isinstance(requires, list):
        metadata.extend(f"Requires-Dist: {requirement}" for requirement in requires)
    (info / "METADATA").write_text("\n".join(metadata) + "\n")
    (info / "entry_points.txt").write_text(_entry_points_txt(dist.data))
    (info / "top_level.txt").write_text("".join(f"{p.stem}\n" for p in dist.packages))
    (info / "INSTALLER").write_text("armguest\n")
    (info / "RECORD").write_text("")
    scripts = dist.data.get("scripts")
    if isinstance(scripts, dict):
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name, target in scripts.items():
            module, _, function = str(target).partition(":")
            launcher = bin_dir / str(name)
            launcher.write_text(
                "#!/usr/bin/python3.11\n"
                "import sys\n"
                f"from {module} import {function}\n"
                f"sys.exit({function}())\n"
            )
            launcher.chmod(0o755)
