"""Checkpoints: CPU threads, devices and RAM in a directory, written atomically.

Layout: ``manifest.json`` (format, version, architecture, tick, machine
config, CPU and device state, RAM regions with SHA-256 digests) and one raw
file per RAM region.  A checkpoint is written into a temporary sibling
directory and renamed into place, so a failure leaves no half checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from kvmbase.errors import CheckpointError
from kvmbase.sim.system import System

FORMAT = "kvmbase-checkpoint"
VERSION = 2
MANIFEST = "manifest.json"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(
    directory: str | os.PathLike[str],
    system: System,
    *,
    arch: str,
    config: dict[str, Any],
) -> Path:
    """Write the drained ``system`` to ``directory`` (replacing it)."""
    target = Path(directory).absolute()
    active = [cpu for cpu in system.cpus if not cpu.switched_out]
    for cpu in active:
        if not cpu.drained or cpu.state.value != "idle":
            raise CheckpointError(f"{cpu.name} is {cpu.state.value}; drain before a checkpoint")
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        memories = []
        for index, memory in enumerate(system.memories):
            name = f"memory-{index}.bin"
            path = temporary / name
            with open(path, "wb") as stream:
                stream.write(memory.view)
                stream.flush()
                os.fsync(stream.fileno())
            memories.append(
                {
                    "name": memory.name,
                    "base": memory.base,
                    "size": memory.size,
                    "file": name,
                    "sha256": hashlib.sha256(memory.view).hexdigest(),
                }
            )
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "arch": arch,
            "tick": system.cur_tick,
            "config": config,
            # Switched-out CPUs hold no thread; a restore rebuilds only the
            # running ones, in this order.
            "cpus": [
                {"name": cpu.name, "thread": cpu.serialize_thread()} for cpu in active
            ],
            "devices": {
                device.name: device.serialize()
                for device in system.bus.devices()
                if device.checkpointed
            },
            "memories": memories,
        }
        manifest_path = temporary / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        _fsync_file(manifest_path)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            temporary.rename(target)
            shutil.rmtree(old)
        else:
            temporary.rename(target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a checkpoint, checked for format and version."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{directory} is not a checkpoint: no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise CheckpointError(
            f"{directory} is checkpoint format version {manifest.get('version')}; "
            f"this kvmbase reads version {VERSION}"
        )
    return manifest


def restore_checkpoint(
    directory: str | os.PathLike[str], system: System, manifest: dict[str, Any]
) -> None:
    """Load RAM, devices and CPU threads of a checkpoint into ``system``.

    Everything is checked before anything is changed.
    """
    root = Path(directory)
    regions = manifest["memories"]
    layout = [(m.name, m.base, m.size) for m in system.memories]
    saved = [(r["name"], r["base"], r["size"]) for r in regions]
    if layout != saved:
        raise CheckpointError(f"RAM layout differs: checkpoint has {saved}, machine has {layout}")
    active = [cpu for cpu in system.cpus if not cpu.switched_out]
    if len(manifest["cpus"]) != len(active):
        raise CheckpointError(
            f"CPUs differ: checkpoint has {len(manifest['cpus'])} running CPUs "
            f"({', '.join(c['name'] for c in manifest['cpus'])}), machine has {len(active)}"
        )
    devices = {device.name: device for device in system.bus.devices() if device.checkpointed}
    if sorted(manifest["devices"]) != sorted(devices):
        raise CheckpointError(
            f"devices differ: checkpoint has {sorted(manifest['devices'])}, "
            f"machine has {sorted(devices)}"
        )
    contents = []
    for region in regions:
        data = (root / region["file"]).read_bytes()
        if len(data) != region["size"] or hashlib.sha256(data).hexdigest() != region["sha256"]:
            raise CheckpointError(f"{root / region['file']} is damaged (size or digest mismatch)")
        contents.append(data)
    for memory, data in zip(system.memories, contents, strict=True):
        memory.view[:] = data
    for name, state in manifest["devices"].items():
        devices[name].unserialize(state)
    for cpu, saved in zip(active, manifest["cpus"], strict=True):
        cpu.unserialize_thread(saved["thread"])
    system.event_queue.cur_tick = int(manifest["tick"])
