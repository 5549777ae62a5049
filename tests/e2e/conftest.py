"""Fixtures of the end-to-end tests (real /dev/kvm, x86 host)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import GUESTS

from kvm_x86.guests import assemble
from kvmbase import Machine


@pytest.fixture(scope="session")
def guest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every guest in tests/e2e/guests, built once per session."""
    out = tmp_path_factory.mktemp("e2e-guests")
    for source in GUESTS.glob("*.S"):
        assemble(source, out / f"{source.stem}.bin")
    return out


@pytest.fixture
def machines() -> Iterator[list[Machine]]:
    """Machines a test makes; all closed at the end."""
    made: list[Machine] = []
    yield made
    for machine in made:
        machine.close()
