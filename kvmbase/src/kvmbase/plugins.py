"""Discovery of architecture plugins through the entry-point group ``kvmbase``."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from kvmbase import hookspecs
from kvmbase.arch import ArchDescription
from kvmbase.errors import PluginError

if TYPE_CHECKING:
    from kvmbase.config import MachineConfig
    from kvmbase.cpu import BaseKvmCPU
    from kvmbase.vm import KvmVM

ENTRY_POINT_GROUP = "kvmbase"

#: What to install on a host of each machine kind, for messages.
SUGGESTED_PLUGINS = {"x86_64": "kvm-x86", "aarch64": "kvm-armv8"}


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that failed to load, and why."""

    name: str
    distribution: str
    error: str


class _Registry:
    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self.distributions: dict[str, str] = {}
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            distribution = entry.dist.name if entry.dist is not None else "?"
            if self.manager.get_plugin(entry.name) is not None:
                continue
            try:
                plugin = entry.load()
                self.manager.register(plugin, name=entry.name)
            except Exception as exc:  # one broken plugin must not hide the others
                error = f"{type(exc).__name__}: {exc}"
                self.broken.append(BrokenPlugin(entry.name, distribution, error))
                continue
            self.distributions[entry.name] = distribution


_registry: _Registry | None = None


def registry() -> _Registry:
    global _registry
    if _registry is None:
        _registry = _Registry()
    return _registry


def plugin_manager() -> pluggy.PluginManager:
    """The plugin manager, with every installed plugin loaded."""
    return registry().manager


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object directly (tests, embedding applications)."""
    plugin_manager().register(plugin, name=name)


def unregister_plugin(plugin: object) -> None:
    plugin_manager().unregister(plugin)


def broken_plugins() -> list[BrokenPlugin]:
    return list(registry().broken)


def other_plugins() -> list[str]:
    """Loaded plugins that register no architecture (extensions), by name."""
    manager = plugin_manager()
    names = []
    for name, plugin in manager.list_name_plugin():
        if name == hookspecs.__name__ or plugin is hookspecs:
            continue
        results = manager.subset_hook_caller(
            "kvmbase_register_arch",
            remove_plugins=[p for n, p in manager.list_name_plugin() if n != name],
        )()
        if not any(results):
            names.append(name)
    return sorted(names)


def architectures() -> dict[str, ArchDescription]:
    """Every installed architecture by name."""
    found: dict[str, ArchDescription] = {}
    for description in plugin_manager().hook.kvmbase_register_arch():
        if description is None:
            continue
        if not isinstance(description, ArchDescription):
            raise PluginError(f"a plugin registered {description!r}, not an ArchDescription")
        if description.name in found:
            raise PluginError(f"two plugins register the architecture {description.name!r}")
        found[description.name] = description
    return found


def install_hint() -> str:
    import platform

    suggestion = SUGGESTED_PLUGINS.get(platform.machine())
    if suggestion:
        return f"install one, e.g. `pip install {suggestion}`"
    return "install the plugin for your host's architecture"


def get_arch(name: str) -> ArchDescription:
    """The named architecture, or a :class:`PluginError` that says what to install."""
    found = architectures()
    if name in found:
        return found[name]
    if not found:
        raise PluginError(f"no architecture plugin is installed; {install_hint()}")
    raise PluginError(
        f"architecture {name!r} is not installed; installed: {', '.join(sorted(found))}"
    )


def check_machine_config(config: MachineConfig, source: str | None = None) -> None:
    """Apply the architecture's own cross-section rules; raise ConfigError."""
    from kvmbase.config import ConfigError

    arch = get_arch(config.arch)
    if arch.check_config is not None:
        issues = arch.check_config(config)
        if issues:
            raise ConfigError(issues, source=source)


def collect_exit_handlers(cpu: BaseKvmCPU) -> dict[int, Callable[[BaseKvmCPU], int]]:
    handlers: dict[int, Callable[[BaseKvmCPU], int]] = {}
    for result in plugin_manager().hook.kvmbase_exit_handlers(cpu=cpu):
        if result:
            handlers.update(result)
    return handlers


def dump_sections(cpu: BaseKvmCPU) -> dict[str, Callable[[], Any]]:
    sections: dict[str, Callable[[], Any]] = {}
    for result in plugin_manager().hook.kvmbase_dump_sections(cpu=cpu):
        if result:
            sections.update(result)
    return sections


def notify_vm_started(vm: KvmVM) -> None:
    plugin_manager().hook.kvmbase_vm_started(vm=vm)


def notify_vcpu_started(cpu: BaseKvmCPU) -> None:
    plugin_manager().hook.kvmbase_vcpu_started(cpu=cpu)


def config_models() -> Mapping[str, Any]:
    """Each installed architecture's config model by name."""
    return {name: arch.config_model for name, arch in architectures().items()}
