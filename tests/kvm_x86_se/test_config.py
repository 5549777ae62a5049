"""``kvmbase exec --config FILE``: the program described in a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvm_x86.se import load_exec_config
from kvmbase.config import ConfigError

from .conftest import run_exec, run_native


@pytest.mark.kvm
def test_config_file_runs_like_the_command_line(busybox: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "f.txt").write_text("b\na\nc\n")
    config = tmp_path / "job.toml"
    config.write_text(
        f'[exec]\nprogram = "{busybox}"\nargs = ["sort"]\ncwd = "work"\n'
        'env = { LC_ALL = "C" }\nram_size = "256MiB"\n'
    )
    # ARGS on the command line are added after the file's args
    emulated = run_exec(["f.txt"], options=["--config", str(config)], cwd=tmp_path)
    native = run_native([busybox, "sort", "f.txt"], cwd=work)
    assert (emulated.status, emulated.stdout, emulated.stderr) == (
        native.status, native.stdout, native.stderr
    )
    assert emulated.stdout == b"a\nb\nc\n"


def test_config_errors_name_every_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("exec:\n  program: ''\n  argz: [1]\n  ram_size: lots\n")
    with pytest.raises(ConfigError) as caught:
        load_exec_config(config)
    assert sorted(issue.loc for issue in caught.value.errors) == [
        ("exec", "argz"), ("exec", "program"), ("exec", "ram_size")
    ]
    assert "did you mean 'args'?" in str(caught.value)
    result = run_exec([], options=["--config", str(config)])
    assert result.status == 2
    assert b"bad.yaml: exec.argz: unknown key; did you mean 'args'?" in result.stderr
