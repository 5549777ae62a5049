"""A cffi API-mode (out-of-line) module for the KVM_RUN call-variant benchmark.

``load()`` compiles ``_kvmrun_api`` into ``bench/.build`` on first use (needs a
C compiler and the Python headers) and imports it.  It offers:

``lib.run(fd)``
    ``ioctl(fd, KVM_RUN, 0)``; 0, or ``-errno`` on failure.
``lib.run_reason(fd, run)``
    the same, then returns ``run->exit_reason`` (one call for both).
``ffi``
    ``struct kvm_run`` laid out by the compiler from ``<linux/kvm.h>`` (the
    fields the exit loops read; ``...`` lets the compiler place them), so
    ``ffi.from_buffer("struct kvm_run *", mapping)`` reads through API-mode
    cdata rather than cffi's ABI-mode layout engine.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BUILD_DIR = Path(__file__).resolve().parent / ".build"
MODULE = "_kvmrun_api"

CDEF = """
struct kvm_run {
    uint8_t request_interrupt_window;
    uint8_t immediate_exit;
    ...;
    uint32_t exit_reason;
    union {
        struct {
            uint8_t direction;
            uint8_t size;
            uint16_t port;
            uint32_t count;
            uint64_t data_offset;
        } io;
        struct {
            uint64_t phys_addr;
            uint8_t data[8];
            uint32_t len;
            uint8_t is_write;
        } mmio;
        ...;
    };
    ...;
};
int run(int fd);
int run_reason(int fd, struct kvm_run *r);
"""

SOURCE = """
#include <errno.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

static int run(int fd)
{
    return ioctl(fd, KVM_RUN, 0) < 0 ? -errno : 0;
}

static int run_reason(int fd, struct kvm_run *r)
{
    return ioctl(fd, KVM_RUN, 0) < 0 ? -errno : (int)r->exit_reason;
}
"""


def build(force: bool = False) -> Path:
    """Compile the module into BUILD_DIR unless it is there already."""
    import cffi

    BUILD_DIR.mkdir(exist_ok=True)
    existing = sorted(BUILD_DIR.glob(f"{MODULE}.*.so"))
    stamp = BUILD_DIR / f"{MODULE}.c"
    if existing and stamp.exists() and not force:
        source_mtime = Path(__file__).stat().st_mtime
        if all(p.stat().st_mtime >= source_mtime for p in existing):
            return existing[0]
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(MODULE, SOURCE, extra_compile_args=["-O2"])
    return Path(ffi.compile(tmpdir=str(BUILD_DIR), verbose=False))


def load() -> ModuleType:
    """Build if needed and import ``_kvmrun_api`` (has ``ffi`` and ``lib``)."""
    build()
    if str(BUILD_DIR) not in sys.path:
        sys.path.insert(0, str(BUILD_DIR))
    return importlib.import_module(MODULE)
