"""The ARM harness's pre-build hook: ``armguest_prebuild.py DEST``.

Runs on the host (which has 32-bit ARM binutils) before the job goes into
the arm64 guest (which has none): builds every A32 test guest into
``DEST/guests/build``, where the conftest looks first.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(dest: Path) -> None:
    spec = importlib.util.spec_from_file_location("arm_guest_build", HERE / "guests" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build_all(dest / "guests" / "build")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
