"""Render the plugin templates into a new distribution directory."""

from __future__ import annotations

import keyword
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Final

from kvmbase.errors import KvmbaseError

#: Config keys of the core: an architecture may not be named after one.
CORE_KEYS: Final = frozenset({"arch", "cpu", "vm", "devices", "image", "max_ticks"})
#: Prefixes dropped from NAME to get the architecture's name (kvm-riscv -> riscv).
NAME_PREFIXES: Final = ("kvmbase-", "kvmbase_", "kvm-", "kvm_")

#: template -> where it goes in the distribution ({package} is filled in)
LAYOUT: Final = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "src/{package}/__init__.py",
    "plugin.py.tmpl": "src/{package}/plugin.py",
    "cpu.py.tmpl": "src/{package}/cpu.py",
    "thread_context.py.tmpl": "src/{package}/thread_context.py",
    "config.py.tmpl": "src/{package}/config.py",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}
EMPTY_FILES: Final = ("src/{package}/py.typed",)


class ScaffoldError(KvmbaseError):
    """A plugin cannot be generated with these arguments."""


@dataclass(frozen=True)
class PluginNames:
    """The names a generated plugin uses (the templates' placeholders)."""

    distribution: str  # NAME as given: the directory and the distribution
    package: str  # the import name: NAME with - made _
    arch: str  # the architecture's name in configs: NAME without a kvm- prefix
    prefix: str  # class-name prefix: the arch in CamelCase
    host: str  # platform.machine() of the hosts it runs on (a TODO to check)


def plugin_names(name: str, host: str | None = None) -> PluginNames:
    """The names for NAME, or a :class:`ScaffoldError` saying what is wrong."""
    package = name.replace("-", "_")
    if not package.isidentifier() or not package.isascii() or keyword.iskeyword(package):
        raise ScaffoldError(
            f"{name!r} is not a valid plugin name: with '-' made '_' it must be a "
            "Python identifier (letters, digits, '_', not starting with a digit)"
        )
    arch = name
    for prefix in NAME_PREFIXES:
        if arch.startswith(prefix) and len(arch) > len(prefix):
            arch = arch[len(prefix) :]
            break
    if arch in CORE_KEYS:
        raise ScaffoldError(
            f"{arch!r} cannot name an architecture: it is a core config key "
            f"({', '.join(sorted(CORE_KEYS))})"
        )
    prefix = "".join(part[:1].upper() + part[1:] for part in arch.replace("-", "_").split("_"))
    return PluginNames(name, package, arch, prefix, host or arch)


def generate(name: str, directory: Path, *, host: str | None = None) -> list[Path]:
    """Write the plugin NAME into ``directory / NAME``; the files written."""
    names = plugin_names(name, host)
    target = directory / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another NAME or --dir")
    if not directory.is_dir():
        raise ScaffoldError(f"{directory} is not a directory")
    values = asdict(names)
    templates = resources.files(__package__).joinpath("templates")
    written = []
    for template, relative in LAYOUT.items():
        text = Template(templates.joinpath(template).read_text(encoding="utf-8"))
        written.append(_write(target / relative.format(**values), text.substitute(values)))
    for relative in EMPTY_FILES:
        written.append(_write(target / relative.format(**values), ""))
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
