"""Guest sources shipped with the plugin."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def guest_source(name: str) -> Path:
    """The shipped guest source ``name`` (``cpuid_post.S``)."""
    return Path(str(resources.files(__package__).joinpath(name)))
