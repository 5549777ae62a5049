"""`pip install ./kvmbase` alone works and says which plugin to install."""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_core_alone_explains_that_no_plugin_is_installed(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # Build from a copy: an in-tree build would leave build/ in the sources.
    source = shutil.copytree(
        ROOT / "kvmbase", tmp_path / "kvmbase", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr
    for command in (["run"], ["run", str(tmp_path / "machine.toml")]):
        (tmp_path / "machine.toml").write_text('arch = "x86"\n')
        result = subprocess.run(
            [str(env_dir / "bin" / "kvmbase"), *command], capture_output=True, text=True
        )
        assert result.returncode in (1, 2), result.stderr
        assert "Traceback" not in result.stderr
        assert "no architecture plugin is installed" in result.stderr
        assert "pip install kvm-x86" in result.stderr
    listing = subprocess.run(
        [str(env_dir / "bin" / "kvmbase"), "plugins"], capture_output=True, text=True
    )
    assert listing.returncode == 0
    assert "no architecture plugin is installed" in listing.stdout
