"""The ``kvmbase new-plugin`` command (registered in :mod:`kvmbase.cli`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kvmbase.scaffold.render import ScaffoldError, generate


@click.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
    show_default=True, help="Where to create the plugin's directory NAME.",
)
@click.option(
    "--host", default=None, metavar="MACHINE",
    help="platform.machine() of the hosts the architecture runs on "
    "[default: the architecture's name].",
)
def new_plugin(name: str, directory: Path, host: str | None) -> None:
    """Generate the skeleton of an architecture plugin NAME (a distribution).

    NAME is the distribution's name; with '-' made '_' it is the package's,
    and without a leading 'kvm-' the architecture's (kvm-riscv: package
    kvm_riscv, architecture riscv). Architecture-specific parts are marked
    '# TODO(arch):'.
    """
    try:
        written = generate(name, directory, host=host)
    except (ScaffoldError, OSError) as exc:
        click.echo(f"kvmbase: error: {exc}", err=True)
        sys.exit(1)
    root = directory / name
    click.echo(f"created {root} ({len(written)} files):")
    for path in written:
        click.echo(f"  {path.relative_to(root)}")
    click.echo(f"next: pip install -e {root} && pytest {root / 'tests'}; "
               f"then grep -rn '# TODO(arch):' {root}/src {root}/tests")
