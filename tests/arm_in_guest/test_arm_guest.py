"""The ARM test suites, run inside an arm64 guest with a real ``/dev/kvm``.

One test here per in-guest test; ``conftest.py`` beside this file boots the
guest once per session and parametrizes ``inner_test`` with the results.
"""

from __future__ import annotations

from typing import Protocol

import pytest


class InnerResult(Protocol):
    nodeid: str

    def check(self) -> None: ...


@pytest.mark.slow
def test_in_arm64_guest(inner_test: InnerResult) -> None:
    """The in-guest test ``inner_test.nodeid`` passed, failed or skipped inside the guest."""
    inner_test.check()
