"""kvm-x86: the x86-64 architecture plugin of kvmbase."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kvm-x86")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
