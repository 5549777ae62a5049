"""Where things are: the repository, the cache, the files shipped with the harness."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (this package lives at ``<root>/armguest``).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Files that go into the guest as they are (``/init``, the pytest report plugin).
GUEST_FILES = Path(__file__).resolve().parent / "guest"

CACHE_ENV = "ARMGUEST_CACHE"


def cache_dir() -> Path:
    """The cache folder: ``$ARMGUEST_CACHE`` or ``<repo>/.cache/armguest``."""
    configured = os.environ.get(CACHE_ENV)
    path = Path(configured) if configured else REPO_ROOT / ".cache" / "armguest"
    path.mkdir(parents=True, exist_ok=True)
    return path
