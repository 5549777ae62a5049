"""Host tools and the Debian package manager.

Everything here is idempotent: a tool that is already installed is not
installed again, ``apt-get update`` runs only when a look-up or a download
needs fresh package lists, and the arm64 architecture is added to dpkg once
(only so that ``apt-get download`` can fetch arm64 .debs; nothing arm64 is
ever installed on the host).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from armguest.errors import HarnessError, HostLacksError
from armguest.paths import cache_dir

#: Host commands the harness needs, and the Debian package that brings each.
HOST_TOOLS: dict[str, str] = {
    "qemu-system-aarch64": "qemu-system-arm",
    # Guests of the ARM plugins are assembled on the host.
    "aarch64-linux-gnu-as": "binutils-aarch64-linux-gnu",
    "arm-linux-gnueabihf-as": "binutils-arm-linux-gnueabihf",
    "dpkg-deb": "dpkg",
}

_updated = False


def log(message: str) -> None:
    """Progress for people: to stderr, so ``--json`` output stays clean."""
    print(f"armguest: {message}", file=sys.stderr, flush=True)


def _is_root() -> bool:
    return os.geteuid() == 0


def _need_apt(what: str) -> None:
    """Refuse clearly when installing ``what`` is impossible here."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise HostLacksError(f"{what}, and apt-get/dpkg to install it (not a Debian host)")
    if not _is_root():
        raise HostLacksError(f"{what}, and root to install it with apt-get")


def run(command: Sequence[str], *, cwd: Path | None = None, quiet: bool = True) -> str:
    """Run ``command``; return its stdout; raise HarnessError with its output on failure."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    result = subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise HarnessError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    if not quiet and result.stdout:
        print(result.stdout, file=sys.stderr, end="")
    return result.stdout


def apt_update() -> None:
    """``apt-get update``, at most once per process."""
    global _updated
    if _updated:
        return
    _need_apt("fresh package lists")
    log("apt-get update")
    run(["apt-get", "update", "-q"])
    _updated = True


def ensure_host_tools(tools: Sequence[str] = tuple(HOST_TOOLS)) -> None:
    """Install the Debian packages of the ``tools`` that are not on PATH."""
    missing = sorted({HOST_TOOLS[tool] for tool in tools if shutil.which(tool) is None})
    if not missing:
        return
    _need_apt(" ".join(missing))
    log(f"installing {' '.join(missing)}")
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    try:
        run(command)
    except HarnessError:
        apt_update()
        run(command)
    still = [tool for tool in tools if shutil.which(tool) is None]
    if still:
        raise HarnessError(f"installed {' '.join(missing)} but still no {' '.join(still)}")


def ensure_arm64_architecture() -> None:
    """Let apt download arm64 packages (``dpkg --add-architecture arm64``)."""
    if shutil.which("dpkg") is None or shutil.which("apt-get") is None:
        raise HostLacksError("apt-get/dpkg to download Debian's arm64 packages (not a Debian host)")
    foreign = run(["dpkg", "--print-foreign-architectures"]).split()
    if "arm64" in foreign:
        return
    _need_apt("the arm64 architecture in dpkg (to download arm64 .debs)")
    log("dpkg --add-architecture arm64")
    run(["dpkg", "--add-architecture", "arm64"])
    global _updated
    _updated = False
    apt_update()


@dataclass(frozen=True)
class DebPackage:
    """One arm64 package as apt would download it now."""

    name: str
    version: str
    filename: str  # the .deb's file name: name_version_arch.deb, its identity
    depends: str


def _parse_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


APT_LISTS = Path("/var/lib/apt/lists")


def _lists_state() -> str:
    """Names, sizes and times of apt's package lists: they change only with an update."""
    try:
        entries = sorted(
            f"{entry.name}:{entry.stat().st_size}:{entry.stat().st_mtime_ns}"
            for entry in os.scandir(APT_LISTS)
            if "_Packages" in entry.name or entry.name.endswith("Release")
        )
    except OSError:
        return ""
    return "\n".join(entries)


def resolve_packages(names: Sequence[str], arch: str = "arm64") -> list[DebPackage]:
    """The candidate version of each package, from apt's local lists.

    ``apt-cache`` takes about a second a call here, so answers are kept in the
    cache for as long as apt's lists are unchanged.  Runs ``apt-get update``
    once when a package is not known (first use, lists that predate it).
    """
    state = _lists_state()
    key = hashlib.sha256("\n".join([state, arch, *names]).encode()).hexdigest()[:20]
    memo = cache_dir() / "resolved" / f"{key}.json"
    if state and memo.is_file():
        return [DebPackage(**fields) for fields in json.loads(memo.read_text())]
    packages = _resolve_packages(names, arch)
    if state == _lists_state():
        memo.parent.mkdir(exist_ok=True)
        memo.write_text(json.dumps([asdict(package) for package in packages]))
    return packages


def _resolve_packages(names: Sequence[str], arch: str) -> list[DebPackage]:
    ensure_arm64_architecture()
    command = ["apt-cache", "show", "--no-all-versions", *(f"{name}:{arch}" for name in names)]
    try:
        text = run(command)
    except HarnessError:
        apt_update()
        text = run(command)
    found: dict[str, DebPackage] = {}
    for stanza in _parse_stanzas(text):
        name = stanza.get("Package", "")
        if name in names and name not in found:
            found[name] = DebPackage(
                name=name,
                version=stanza.get("Version", ""),
                # what apt-get download names it (the epoch's colon quoted)
                filename="{}_{}_{}.deb".format(
                    name,
                    stanza.get("Version", "").replace(":", "%3a"),
                    stanza.get("Architecture", arch),
                ),
                depends=stanza.get("Depends", ""),
            )
    missing = [name for name in names if name not in found]
    if missing:
        raise HarnessError(f"apt knows no {arch} package {' '.join(missing)}")
    return [found[name] for name in names]


def download_debs(packages: Sequence[DebPackage], folder: Path) -> list[Path]:
    """The .deb files of ``packages`` in ``folder``, downloading those missing."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not (folder / p.filename).is_file()]
    if missing:
        log("downloading " + " ".join(p.filename for p in missing))
        specs = [f"{p.name}:arm64={p.version}" for p in missing]
        run(["apt-get", "download", "-q", *specs], cwd=folder)
    paths = [folder / p.filename for p in packages]
    absent = [str(path) for path in paths if not path.is_file()]
    if absent:
        raise HarnessError("apt-get download did not leave " + " ".join(absent))
    return paths


def extract_deb(deb: Path, destination: Path) -> None:
    """Unpack a .deb's files (``dpkg-deb -x``) into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    run(["dpkg-deb", "-x", str(deb), str(destination)])


def fetch_debs(names: Sequence[str], folder: Path) -> list[tuple[DebPackage, Path]]:
    """Resolve and download arm64 ``names`` into ``folder``.

    Old versions leave the mirror: when a download fails, the lists are
    refreshed and the names resolved again, once.
    """
    packages = resolve_packages(names)
    try:
        paths = download_debs(packages, folder)
    except HarnessError:
        if _updated:
            raise
        apt_update()
        packages = resolve_packages(names)
        paths = download_debs(packages, folder)
    return list(zip(packages, paths, strict=True))
