"""The in-guest smoke tests: they run inside the arm64 guest of ``armguest``.

``tests/arm_in_guest`` boots the guest and reports each of them on the host;
collected directly on a host that is not arm64 they skip, saying so.
"""

from __future__ import annotations

import platform

import pytest

ARM64 = platform.machine() in ("aarch64", "arm64")


# Session scope: it must come before the module-scoped fixtures of the tests.
@pytest.fixture(scope="session", autouse=True)
def _inside_arm64_guest() -> None:
    if not ARM64:
        pytest.skip(
            f"host lacks: an arm64 KVM (this host is {platform.machine()}); "
            "these run inside the arm64 guest, reported through tests/arm_in_guest"
        )
