"""Machine configs: pydantic models, loading from TOML, YAML or JSON, and schema.

A config file describes one machine.  Its top-level keys are the fields of
:class:`MachineConfig` plus one optional section named after the chosen
architecture (``[x86]`` in TOML), which that architecture's plugin validates
with its own model; the result lands in :attr:`MachineConfig.arch_config`.

Every model forbids unknown keys, so a misspelt key is an error and not a
silently ignored setting.  :func:`validate_machine_config` reports every
problem of a config at once, each with its field path, as a
:class:`ConfigError`.

Quantities may be written the gem5 way (``"2GHz"``, ``"16MiB"``,
``"0x100000"``); see :mod:`kvmbase.units`.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kvmbase.errors import KvmbaseError
from kvmbase.units import (
    ADDRESS_LIMIT,
    ADDRESS_PATTERN,
    Address,
    Frequency,
    MemorySize,
    format_size,
    parse_address,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CONFIG_SUFFIXES",
    "NO_INPUT",
    "AddressRange",
    "ConfigError",
    "ConfigIssue",
    "CpuConfig",
    "Device",
    "GuestOpsConfig",
    "ImageConfig",
    "IoPort",
    "MachineConfig",
    "MmioScratchConfig",
    "Uart16550Config",
    "VmConfig",
    "dump_machine_config",
    "load_config_data",
    "load_machine_config",
    "machine_json_schema",
    "validate_machine_config",
]

PAGE_SIZE: Final = 4096
"""Guest RAM is mapped into KVM in pages of this size."""

CONFIG_SUFFIXES: Final = (".toml", ".yaml", ".yml", ".json")
"""File name suffixes :func:`load_config_data` understands."""

# Pydantic reports some cross-field errors at the field that holds them (the
# whole device list, say); this context key carries the rest of the path down
# to the offending value so that the issue can point at it exactly.
_SUB_LOC: Final = "kvmbase_sub_loc"
_SUB_INPUT: Final = "kvmbase_sub_input"


def _hex(value: int) -> str:
    return f"{value:#x}"


def _parse_io_port(value: str | int) -> int:
    """Return an x86 IO port number, 0 to 0xFFFF, from an int or a string."""
    forms = "use an integer from 0 to 0xFFFF, in decimal or as 0x-prefixed hex"
    try:
        port = parse_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IO port: {forms}") from None
    if port > 0xFFFF:
        raise ValueError(f"{value!r} is not an IO port: {forms}")
    return port


IoPort = Annotated[
    int,
    BeforeValidator(_parse_io_port),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 0xFFFF},
                {"type": "string", "pattern": ADDRESS_PATTERN},
            ],
            "examples": ["0x3f8", 1016],
        },
        mode="validation",
    ),
]
"""An x86 legacy IO port, 0 to 0xFFFF; configs may write it in hex."""


# --------------------------------------------------------------------------
# Models


class CpuConfig(BaseModel):
    """The vCPU: gem5's ``BaseKvmCPU`` parameters, with gem5's defaults."""

    model_config = ConfigDict(extra="forbid")

    host_factor: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description=(
            "How much faster the host runs than the simulated CPU: guest "
            "cycles are scaled by this factor to get simulated time."
        ),
    )
    host_freq: Frequency = Field(
        default="2GHz",
        validate_default=True,
        description=(
            "Host CPU frequency, used to turn host cycles counted while the "
            "vCPU runs into simulated time."
        ),
    )
    clock: Frequency = Field(
        default="2GHz",
        validate_default=True,
        description="Clock frequency of the simulated CPU.",
    )
    use_coalesced_mmio: bool = Field(
        default=True,
        description=(
            "Let KVM batch writes to coalesced MMIO zones in a ring instead of "
            "exiting on each one."
        ),
    )
    use_perf: bool = Field(
        default=True,
        description=(
            "Count guest cycles and instructions with hardware performance "
            "counters (perf_event_open)."
        ),
    )
    use_perf_overflow: bool = Field(
        default=False,
        description=(
            "Force exits with a cycle-counter overflow signal instead of a POSIX timer."
        ),
    )
    always_sync_tc: bool = Field(
        default=False,
        description=(
            "Copy the vCPU state to and from the thread context on every "
            "entry and exit, not only when it is needed (slow; for debugging)."
        ),
    )


class AddressRange(BaseModel):
    """A range of guest physical addresses, ``[start, start + size)``."""

    model_config = ConfigDict(extra="forbid")

    start: Address = Field(description="First byte address of the range.")
    size: MemorySize = Field(gt=0, description="Length of the range in bytes.")

    @property
    def end(self) -> int:
        """One past the last byte address of the range."""
        return self.start + self.size

    @model_validator(mode="after")
    def _check_fits(self) -> AddressRange:
        if self.end > ADDRESS_LIMIT:
            raise ValueError(
                f"range starting at {_hex(self.start)} of size "
                f"{format_size(self.size)} goes past the end of the 64-bit "
                "address space"
            )
        return self


class VmConfig(BaseModel):
    """The virtual machine: guest RAM and KVM's coalesced IO zones."""

    model_config = ConfigDict(extra="forbid")

    ram_size: MemorySize = Field(
        default="16MiB",
        validate_default=True,
        description="Size of guest RAM; a positive multiple of 4 KiB.",
    )
    ram_base: Address = Field(
        default=0,
        description="Guest physical address where RAM starts; 4 KiB aligned.",
    )
    coalesced_mmio: list[AddressRange] = Field(
        default_factory=list,
        description="MMIO ranges whose writes KVM may batch (coalesced MMIO).",
    )
    coalesced_pio: list[AddressRange] = Field(
        default_factory=list,
        description="Port IO ranges whose writes KVM may batch (x86 only).",
    )

    @field_validator("ram_size")
    @classmethod
    def _check_ram_size(cls, size: int) -> int:
        if size <= 0 or size % PAGE_SIZE:
            # MB is decimal here, unlike gem5, so "512MB" is a likely cause.
            raise ValueError(
                f"RAM size {size} bytes is not a positive multiple of 4 KiB "
                "(4096 bytes); note that MB means 10**6 bytes, MiB 2**20"
            )
        return size

    @field_validator("ram_base")
    @classmethod
    def _check_ram_base(cls, base: int) -> int:
        if base % PAGE_SIZE:
            raise ValueError(f"RAM base {_hex(base)} is not 4 KiB (0x1000) aligned")
        return base

    @model_validator(mode="after")
    def _check_ram_fits(self) -> VmConfig:
        if self.ram_base + self.ram_size > ADDRESS_LIMIT:
            raise ValueError(
                f"RAM of {format_size(self.ram_size)} at {_hex(self.ram_base)} "
                "goes past the end of the 64-bit address space"
            )
        return self


class Uart16550Config(BaseModel):
    """A 16550 UART, at a legacy x86 IO port or at an MMIO address."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["uart16550"] = Field(description="Device kind.")
    name: str = Field(default="uart0", min_length=1, description="Unique device name.")
    port: IoPort | None = Field(
        default=None,
        description="Legacy x86 IO port of the first register (e.g. 0x3f8).",
    )
    address: Address | None = Field(
        default=None, description="MMIO address of the first register."
    )
    output: str = Field(
        default="stdout",
        min_length=1,
        description=(
            "Where transmitted bytes go: 'stdout', 'stderr', 'none', or the "
            "path of a file."
        ),
    )

    @model_validator(mode="after")
    def _check_one_location(self) -> Uart16550Config:
        if (self.port is None) == (self.address is None):
            raise ValueError(
                "give exactly one of 'port' (x86 IO port) or 'address' (MMIO address)"
            )
        return self


class MmioScratchConfig(BaseModel):
    """A test device: RAM-like registers in MMIO space that read back writes."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["mmio-scratch"] = Field(description="Device kind.")
    name: str = Field(min_length=1, description="Unique device name.")
    address: Address = Field(description="MMIO address of the first byte.")
    size: MemorySize = Field(
        default="4KiB",
        validate_default=True,
        gt=0,
        description="Size of the register file in bytes.",
    )

    @model_validator(mode="after")
    def _check_fits(self) -> MmioScratchConfig:
        if self.address + self.size > ADDRESS_LIMIT:
            raise ValueError(
                f"{format_size(self.size)} at {_hex(self.address)} goes past the "
                "end of the 64-bit address space"
            )
        return self


GUEST_OPS_DEFAULT_ADDRESS: Final = 0xFFFF0000
"""Where the guest-operations page sits unless the config says otherwise."""


class GuestOpsConfig(BaseModel):
    """The guest-operations page: a guest asks the host to exit, dump or reset
    statistics, or take a checkpoint (:mod:`kvmbase.sim.guest_ops`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["guest-ops"] = Field(description="Device kind.")
    name: str = Field(default="guest_ops", min_length=1, description="Unique device name.")
    address: Address = Field(
        default=GUEST_OPS_DEFAULT_ADDRESS,
        description=(
            "MMIO address of the device's 4 KiB page; 4 KiB aligned and outside RAM "
            "(default 0xFFFF0000)."
        ),
    )
    checkpoint_dir: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Directory the checkpoints a guest asks for are written into, as "
            "checkpoint-1, checkpoint-2, ...; a relative path is taken from the "
            "current directory.  Unset: a guest's checkpoint request is an error "
            "(the kvmbase run option --checkpoint-dir sets it too)."
        ),
    )

    @field_validator("address")
    @classmethod
    def _check_page(cls, address: int) -> int:
        # A page is the unit KVM maps RAM in: a device sharing a page with RAM
        # would never see the guest's accesses.
        if address % PAGE_SIZE:
            raise ValueError(f"address {_hex(address)} is not 4 KiB (0x1000) aligned")
        if address + PAGE_SIZE > ADDRESS_LIMIT:
            raise ValueError(
                f"a 4 KiB page at {_hex(address)} goes past the end of the 64-bit "
                "address space"
            )
        return address


Device = Annotated[
    Union[Uart16550Config, MmioScratchConfig, GuestOpsConfig],  # noqa: UP007 - runtime alias on 3.10
    Field(discriminator="type"),
]
"""Any device a machine config may list, told apart by its ``type`` key."""


class ImageConfig(BaseModel):
    """A guest image loaded into RAM before the first vCPU runs."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1,
        description=(
            "Image file; a relative path is taken relative to the config "
            "file's directory."
        ),
    )
    load_address: Address = Field(
        default=0x100000,
        description="Guest physical address the image is copied to; inside RAM.",
    )
    entry: Address | None = Field(
        default=None,
        description="Guest address execution starts at; the load address if unset.",
    )
    format: Literal["raw"] = Field(
        default="raw", description="Image format: 'raw' copies the file byte for byte."
    )

    @property
    def entry_address(self) -> int:
        """Where execution starts: ``entry``, or the load address."""
        return self.load_address if self.entry is None else self.entry


class _MachineCore(BaseModel):
    """The fields of a machine that the core itself validates."""

    model_config = ConfigDict(extra="forbid")

    arch: str = Field(
        min_length=1,
        description=(
            "Architecture plugin to run the machine with (e.g. 'x86'); its own "
            "settings go in a section of the same name."
        ),
    )
    cpu: CpuConfig = Field(default_factory=CpuConfig, description="The vCPU.")
    vm: VmConfig = Field(
        default_factory=VmConfig,
        description="Guest RAM and coalesced IO zones.",
    )
    devices: list[Device] = Field(
        default_factory=list, description="Devices on the machine's bus."
    )
    image: ImageConfig | None = Field(default=None, description="Guest image to load.")
    max_ticks: int | None = Field(
        default=None,
        gt=0,
        description="Stop the simulation at this tick (1 tick = 1 ps).",
    )

    @field_validator("devices")
    @classmethod
    def _check_unique_names(cls, devices: list[Device]) -> list[Device]:
        first_index: dict[str, int] = {}
        for index, device in enumerate(devices):
            if device.name in first_index:
                raise PydanticCustomError(
                    "duplicate_device_name",
                    "device name {name} is already used by device {first}",
                    {
                        "name": repr(device.name),
                        "first": first_index[device.name],
                        _SUB_LOC: (index, "name"),
                        _SUB_INPUT: device.name,
                    },
                )
            first_index[device.name] = index
        return devices

    @field_validator("devices")
    @classmethod
    def _check_one_guest_ops(cls, devices: list[Device]) -> list[Device]:
        # The machine serves one page's requests; a second would be ignored.
        indexes = [i for i, device in enumerate(devices) if isinstance(device, GuestOpsConfig)]
        if len(indexes) > 1:
            raise PydanticCustomError(
                "second_guest_ops",
                "a machine has at most one guest-ops device; device {first} is one already",
                {
                    "first": indexes[0],
                    _SUB_LOC: (indexes[1], "type"),
                    _SUB_INPUT: "guest-ops",
                },
            )
        return devices

    @field_validator("image")
    @classmethod
    def _check_image_in_ram(
        cls, image: ImageConfig | None, info: ValidationInfo
    ) -> ImageConfig | None:
        # "vm" is validated before "image"; it is absent here when it failed,
        # and that failure is reported on its own.
        vm = info.data.get("vm")
        if image is None or not isinstance(vm, VmConfig):
            return image
        ram_end = vm.ram_base + vm.ram_size
        if not vm.ram_base <= image.load_address < ram_end:
            raise PydanticCustomError(
                "image_outside_ram",
                "load address {address} is outside RAM [{start}, {end})",
                {
                    "address": _hex(image.load_address),
                    "start": _hex(vm.ram_base),
                    "end": _hex(ram_end),
                    _SUB_LOC: ("load_address",),
                    _SUB_INPUT: image.load_address,
                },
            )
        return image


class MachineConfig(_MachineCore):
    """A whole machine: the core's settings plus the architecture's section."""

    arch_config: SerializeAsAny[BaseModel] | None = Field(
        default=None,
        description=(
            "The architecture plugin's own settings, validated by its model; "
            "the file holds them under the key named after the arch."
        ),
    )

    @field_validator("arch_config", mode="before")
    @classmethod
    def _only_models(cls, value: object) -> object:
        # A bare dict would quietly become an empty BaseModel; only the
        # loader, which knows the plugin's model, can turn a section into one.
        if value is not None and not isinstance(value, BaseModel):
            raise ValueError(
                "arch_config must be a validated plugin model; put the "
                "architecture's settings under the key named after the arch"
            )
        return value


# --------------------------------------------------------------------------
# Errors


class _NoInput:
    """Marks an issue that has no offending value (a missing key)."""

    def __repr__(self) -> str:
        return "NO_INPUT"

    def __reduce__(self) -> str:
        # Copies and unpickled issues get the module's one instance back, so
        # that ``issue.input is NO_INPUT`` holds for them too.
        return "NO_INPUT"


NO_INPUT: Final = _NoInput()
"""The :attr:`ConfigIssue.input` of an issue with no value to show."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where, what, and the value found there."""

    loc: tuple[str | int, ...]
    message: str
    input: object = NO_INPUT

    @property
    def path(self) -> str:
        """The field path, dotted: ``devices.0.port``."""
        return ".".join(str(part) for part in self.loc)

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.loc else self.message
        if self.input is not NO_INPUT:
            shown = repr(self.input)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            text += f" (got {shown})"
        return text


class ConfigError(KvmbaseError):
    """Every problem found in one config, each with its field path."""

    errors: list[ConfigIssue]
    source: str | None

    def __init__(
        self, errors: Iterable[ConfigIssue], source: str | None = None
    ) -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(self.errors, source)

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(prefix + str(issue) for issue in self.errors)


# --------------------------------------------------------------------------
# Turning pydantic's errors into issues


def _child(node: object, part: str | int) -> object:
    if isinstance(node, Mapping):
        return node.get(part)
    if (
        isinstance(node, Sequence)
        and not isinstance(node, str)
        and isinstance(part, int)
    ):
        return node[part] if -len(node) <= part < len(node) else None
    return None


def _strip_union_tags(loc: Sequence[str | int], data: object) -> tuple[str | int, ...]:
    """Drop the union tags pydantic puts in paths: ``devices.0.uart16550.port``.

    The tag is not a key of the file, so a path that includes it would send
    the user looking for something that is not there.
    """
    result: list[str | int] = []
    node = data
    for part in loc:
        if (
            isinstance(part, str)
            and isinstance(node, Mapping)
            and part not in node
            and node.get("type") == part
        ):
            continue
        result.append(part)
        node = _child(node, part)
    return tuple(result)


def _model_candidates(annotation: Any) -> list[Any]:
    """Split an annotation into the alternatives a value may take."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _model_candidates(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [
            candidate
            for arg in typing.get_args(annotation)
            for candidate in _model_candidates(arg)
        ]
    return [annotation]


def _resolve(annotation: Any, node: object) -> Any:
    """Narrow an annotation to the one alternative that applies to ``node``."""
    candidates = [c for c in _model_candidates(annotation) if c is not type(None)]
    if len(candidates) == 1:
        return candidates[0]
    # A tagged union: pick the model whose literal ``type`` matches the data.
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            tag_field = candidate.model_fields.get("type")
            if (
                tag_field is not None
                and isinstance(node, Mapping)
                and node.get("type") in typing.get_args(tag_field.annotation)
            ):
                return candidate
    return None


def _model_for_path(
    model: type[BaseModel], loc: Sequence[str | int], data: object
) -> type[BaseModel] | None:
    """Follow ``loc`` (keys and list indexes) from ``model`` to a nested model."""
    current: Any = model
    node = data
    for part in loc:
        node = _child(node, part)
        if isinstance(part, int):
            if typing.get_origin(current) is not list:
                return None
            current = _resolve(typing.get_args(current)[0], node)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _resolve(field.annotation, node)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unknown_key_message(key: object, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(str(key), names, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    if not names:
        return "unknown key"
    return "unknown key; expected one of: " + ", ".join(names)


def _issues_from(
    error: ValidationError,
    model: type[BaseModel],
    data: object,
    prefix: tuple[str | int, ...] = (),
) -> list[ConfigIssue]:
    issues = []
    for details in error.errors(include_url=False):
        loc = _strip_union_tags(details["loc"], data)
        ctx = details.get("ctx", {})
        message = details["msg"]
        value: object = details["input"]
        if details["type"] == "value_error":
            # Our own ValueErrors already say what is wrong; drop pydantic's
            # "Value error, " prefix.
            message = str(ctx["error"])
        elif details["type"] == "missing":
            message = "required key is missing"
            value = NO_INPUT
        elif details["type"] == "extra_forbidden":
            parent = _model_for_path(model, loc[:-1], data)
            known = [] if parent is None else _file_keys(parent)
            message = _unknown_key_message(loc[-1], known)
        if _SUB_LOC in ctx:
            loc += tuple(ctx[_SUB_LOC])
            value = ctx[_SUB_INPUT]
        issues.append(ConfigIssue(prefix + loc, message, value))
    return issues


def _file_keys(model: type[BaseModel]) -> list[str]:
    """The keys a file may use for ``model`` (aliases where set)."""
    return [
        field.alias or name
        for name, field in model.model_fields.items()
        if name != "arch_config"
    ]


# --------------------------------------------------------------------------
# Loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping."""


def _construct_unique_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _json_unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # json has no position here; the key is the best pointer there is.
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse(text: str, suffix: str) -> object:
    """Parse ``text``; syntax errors become messages with line and column."""
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            # tomllib already says "(at line L, column C)".
            raise _SyntaxProblem(f"invalid TOML: {error}") from error
    if suffix in (".yaml", ".yml"):
        try:
            return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = (
                f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            )
            problem = error.problem or error.context or "syntax error"
            raise _SyntaxProblem(f"invalid YAML{where}: {problem}") from error
        except yaml.YAMLError as error:
            raise _SyntaxProblem(f"invalid YAML: {error}") from error
    try:
        return json.loads(text, object_pairs_hook=_json_unique_object)
    except json.JSONDecodeError as error:
        raise _SyntaxProblem(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    except ValueError as error:
        raise _SyntaxProblem(f"invalid JSON: {error}") from error


class _SyntaxProblem(Exception):  # noqa: N818 - internal signal, not an error type
    """A file that does not parse; carries the message for the issue."""


def load_config_data(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config file into plain data, choosing the parser by suffix.

    ``.toml``, ``.yaml``/``.yml`` and ``.json`` are understood.  Every failure
    (unknown suffix, unreadable file, syntax error with its line and column,
    a top level that is not a mapping) raises :class:`ConfigError`.
    """
    source = os.fspath(path)
    suffix = Path(source).suffix.lower()

    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigIssue((), message)], source=source)

    if suffix not in CONFIG_SUFFIXES:
        raise fail(
            f"unknown config file type {suffix or '(no suffix)'!r}; use "
            + ", ".join(CONFIG_SUFFIXES)
        )
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("config file not found") from None
    except UnicodeDecodeError as error:
        raise fail(f"config file is not UTF-8 text: {error}") from None
    except OSError as error:
        raise fail(f"cannot read config file: {error.strerror or error}") from None
    try:
        data = _parse(text, suffix)
    except _SyntaxProblem as error:
        raise fail(str(error)) from None
    # An empty YAML document is None; read it as an empty config so that the
    # missing keys are named rather than the whole file refused.
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise fail(
            f"the top level must be a mapping of keys to values, not a "
            f"{type(data).__name__}"
        )
    return data


def _section_key_rank(data: Mapping[str, Any]) -> dict[object, int]:
    """Rank top-level keys in file order, then core field order, for sorting."""
    order: dict[object, int] = {}
    for key in list(data) + list(_MachineCore.model_fields):
        order.setdefault(key, len(order))
    return order


def validate_machine_config(
    data: Mapping[str, Any],
    arch_models: Mapping[str, type[BaseModel]],
    *,
    base_dir: Path | None = None,
    source: str | None = None,
) -> MachineConfig:
    """Validate config data and return the machine, or raise every problem.

    ``arch_models`` maps each installed architecture's name to the model of
    its section.  A relative image path is resolved against ``base_dir``
    (the current directory when ``None``) and the file must exist.  All
    problems are gathered into one :class:`ConfigError` naming ``source``.
    """
    core_keys = set(_file_keys(_MachineCore))
    clashing = core_keys & set(arch_models)
    if clashing:
        # A plugin bug, not a config mistake: its section could never be read.
        raise ValueError(
            f"architecture names clash with config keys: {sorted(clashing)}"
        )

    issues: list[ConfigIssue] = []
    arch = data.get("arch")
    core: dict[str, Any] = {}
    for key, value in data.items():
        if key in core_keys:
            core[key] = value
        elif key == arch:
            pass  # the chosen arch's section, validated below
        elif key in arch_models:
            issues.append(
                ConfigIssue(
                    (key,),
                    f"section {key!r} given but arch is {arch!r}",
                    NO_INPUT,
                )
            )
        else:
            known = sorted(core_keys) + sorted(arch_models)
            issues.append(ConfigIssue((key,), _unknown_key_message(key, known), value))

    image = core.get("image")
    if (
        isinstance(image, Mapping)
        and isinstance(image.get("path"), str)
        and image["path"]
    ):
        given = image["path"]
        resolved = ((base_dir or Path.cwd()) / Path(given).expanduser()).absolute()
        core["image"] = {**image, "path": str(resolved)}
        if not resolved.exists():
            issues.append(
                ConfigIssue(
                    ("image", "path"), f"image file {str(resolved)!r} not found", given
                )
            )
        elif not resolved.is_file():
            issues.append(
                ConfigIssue(
                    ("image", "path"), f"{str(resolved)!r} is not a file", given
                )
            )

    arch_config: BaseModel | None = None
    if isinstance(arch, str) and arch:
        arch_model = arch_models.get(arch)
        if arch_model is None:
            if arch_models:
                message = f"arch {arch!r} is not installed; installed: " + ", ".join(
                    sorted(arch_models)
                )
            else:
                message = (
                    "no architecture plugin is installed (install one, e.g. "
                    "pip install kvm-x86)"
                )
            issues.append(ConfigIssue(("arch",), message, arch))
        else:
            section = data.get(arch, {})
            try:
                arch_config = arch_model.model_validate(section)
            except ValidationError as error:
                issues.extend(_issues_from(error, arch_model, section, (arch,)))

    machine: MachineConfig | None = None
    try:
        machine = MachineConfig.model_validate({**core, "arch_config": arch_config})
    except ValidationError as error:
        issues.extend(_issues_from(error, MachineConfig, core))

    if issues or machine is None:
        rank = _section_key_rank(data)
        issues.sort(
            key=lambda issue: rank.get(issue.loc[0], len(rank)) if issue.loc else -1
        )
        raise ConfigError(issues, source=source)
    return machine


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_config_model(
    model: type[ModelT], data: Mapping[str, Any], source: str | None = None
) -> ModelT:
    """Validate ``data`` against any config ``model`` (a plugin's own file
    format): every problem is reported with its field path in one
    :class:`ConfigError`, as for machine configs."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_issues_from(exc, model, data), source=source) from None


def load_machine_config(
    path: str | os.PathLike[str], arch_models: Mapping[str, type[BaseModel]]
) -> MachineConfig:
    """Load and validate a machine config file (TOML, YAML or JSON).

    A relative image path is taken relative to the file's directory.
    """
    data = load_config_data(path)
    return validate_machine_config(
        data,
        arch_models,
        base_dir=Path(path).absolute().parent,
        source=os.fspath(path),
    )


def dump_machine_config(config: MachineConfig) -> dict[str, Any]:
    """Return ``config`` as JSON-ready data in the file's own layout.

    The architecture's settings go under the arch's key, so the result can be
    written out, or fed back to :func:`validate_machine_config` (a checkpoint
    stores it that way).
    """
    data = config.model_dump(mode="json", exclude={"arch_config"})
    if config.arch_config is not None:
        data[config.arch] = config.arch_config.model_dump(mode="json")
    return data


def machine_json_schema(arch_models: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """JSON Schema of a machine config file, with one section per installed arch."""
    fields: dict[str, Any] = {}
    if arch_models:
        names = tuple(sorted(arch_models))
        fields["arch"] = (
            Literal[names],
            _MachineCore.model_fields["arch"],
        )
    for index, (name, model) in enumerate(sorted(arch_models.items())):
        # Arch names need not be identifiers, so each section is a field with
        # a made-up name and the arch's name as its alias.
        fields[f"arch_section_{index}"] = (
            model | None,
            Field(
                default=None,
                alias=name,
                description=f"Settings of the {name!r} architecture (when arch is {name!r}).",
            ),
        )
    file_model: type[BaseModel] = create_model(
        "MachineConfig",
        __base__=_MachineCore,
        __doc__=MachineConfig.__doc__,
        **fields,
    )
    schema = file_model.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
