"""``kvmbase new-plugin``: the generated skeleton installs, imports, and runs
the conformance suite (the parts that need no KVM pass; the rest skip because
no host runs the placeholder architecture)."""

from __future__ import annotations

import compileall
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvmbase.arch import ArchDescription
from kvmbase.cpu import BaseKvmCPU
from kvmbase.scaffold import ScaffoldError, generate, plugin_names
from kvmbase.scaffold.command import new_plugin
from kvmbase.testing import HOST_LACKS

NAME = "kvm-toyarch"
PACKAGE = "kvm_toyarch"
FILES = {
    "pyproject.toml",
    "README.md",
    "src/kvm_toyarch/__init__.py",
    "src/kvm_toyarch/py.typed",
    "src/kvm_toyarch/plugin.py",
    "src/kvm_toyarch/cpu.py",
    "src/kvm_toyarch/thread_context.py",
    "src/kvm_toyarch/config.py",
    "tests/test_conformance.py",
}


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    result = CliRunner().invoke(new_plugin, [NAME, "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"created {tmp_path / NAME} (9 files)" in result.output
    return tmp_path / NAME


@pytest.fixture
def imported(plugin_dir: Path) -> Iterator[object]:
    """The generated package's plugin module, imported from its src/."""
    sys.path.insert(0, str(plugin_dir / "src"))
    try:
        yield importlib.import_module(f"{PACKAGE}.plugin")
    finally:
        sys.path.remove(str(plugin_dir / "src"))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_names_follow_from_name() -> None:
    names = plugin_names("kvm-risc-v")
    assert (names.distribution, names.package, names.arch, names.prefix, names.host) == (
        "kvm-risc-v", "kvm_risc_v", "risc-v", "RiscV", "risc-v",
    )
    assert plugin_names("riscv", host="riscv64").host == "riscv64"


def test_generates_every_file_with_the_names_filled_in(plugin_dir: Path) -> None:
    found = {str(path.relative_to(plugin_dir)) for path in plugin_dir.rglob("*") if path.is_file()}
    assert found == FILES
    pyproject = (plugin_dir / "pyproject.toml").read_text()
    assert 'name = "kvm-toyarch"' in pyproject
    assert '[project.entry-points.kvmbase]\ntoyarch = "kvm_toyarch.plugin"' in pyproject
    for path in plugin_dir.rglob("*"):
        if path.is_file():
            assert "$" not in path.read_text().replace("$ ", ""), path  # all substituted
    todos = sum(p.read_text().count("# TODO(arch):") for p in plugin_dir.rglob("*.py"))
    assert todos >= 10
    assert compileall.compile_dir(plugin_dir, quiet=1, force=True)


def test_generated_plugin_describes_its_architecture(imported: object) -> None:
    description = imported.DESCRIPTION  # type: ignore[attr-defined]
    assert isinstance(description, ArchDescription)
    assert (description.name, description.distribution) == ("toyarch", NAME)
    assert issubclass(description.cpu_class, BaseKvmCPU)
    assert description.cpu_class.thread_context_class is description.thread_context_class
    assert description.config_model.model_validate({}).stack_top == 0x80000
    assert imported.kvmbase_register_arch() is description  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("9lives", "'9lives' is not a valid plugin name"),
        ("my.plugin", "'my.plugin' is not a valid plugin name"),
        ("class", "'class' is not a valid plugin name"),
        ("kvm-devices", "'devices' cannot name an architecture: it is a core config key"),
    ],
)
def test_refuses_bad_names(tmp_path: Path, name: str, message: str) -> None:
    result = CliRunner().invoke(new_plugin, [name, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"kvmbase: error: {message}"), line
    assert not list(tmp_path.iterdir())


def test_refuses_an_existing_directory(plugin_dir: Path) -> None:
    before = (plugin_dir / "pyproject.toml").read_text()
    result = CliRunner().invoke(new_plugin, [NAME, "--dir", str(plugin_dir.parent)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"kvmbase: error: {plugin_dir} already exists; choose another NAME or --dir\n"
    )
    assert (plugin_dir / "pyproject.toml").read_text() == before
    with pytest.raises(ScaffoldError, match="is not a directory"):
        generate("other", plugin_dir / "pyproject.toml")


def test_installed_skeleton_runs_the_conformance_suite(plugin_dir: Path, tmp_path: Path) -> None:
    """Installed (into a directory of its own, put on PYTHONPATH: the project's
    venv stays clean), its entry point is found and the suite runs: the tests
    that need no KVM pass, the KVM ones skip, since no host is "toyarch"."""
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--target", str(site), str(plugin_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "tests"],
        cwd=plugin_dir, env=env, capture_output=True, text=True, timeout=120,
    )
    assert re.search(r"\b4 passed, 7 skipped\b", run.stdout), run.stdout + run.stderr
    reasons = re.findall(r"^SKIPPED \[\d+\] \S+ (.*)$", run.stdout, re.MULTILINE)
    assert len(reasons) == 7
    for reason in reasons:
        assert reason.startswith(f"{HOST_LACKS}a host toyarch runs on"), reason
