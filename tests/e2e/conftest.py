"""Fixtures of the end-to-end tests (real /dev/kvm, x86 host).

``machines`` comes from the root ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import GUESTS

from kvm_x86.guests import assemble


@pytest.fixture(scope="session")
def guest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every guest in tests/e2e/guests, built once per session."""
    out = tmp_path_factory.mktemp("e2e-guests")
    for source in GUESTS.glob("*.S"):
        assemble(source, out / f"{source.stem}.bin")
    return out
