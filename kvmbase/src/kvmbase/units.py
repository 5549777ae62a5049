"""gem5-style quantities: frequencies, memory sizes and addresses.

Configs are written by people, so quantities are accepted the way gem5 writes
them (``"2GHz"``, ``"16MiB"``, ``"0xfee00000"``) and stored as plain ints
(Hz, bytes, byte addresses).  Every parser raises :class:`ValueError` with a
message that quotes what was given and lists the forms that work.

One deliberate difference from gem5: ``kB``, ``MB``, ``GB`` and ``TB`` are
decimal (powers of 1000) here, as the SI says, whereas gem5 reads them as
binary.  Use ``KiB``, ``MiB``, ``GiB`` and ``TiB`` for powers of 1024.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Final

from pydantic import BeforeValidator, WithJsonSchema

__all__ = [
    "ADDRESS_LIMIT",
    "ADDRESS_PATTERN",
    "FREQUENCY_PATTERN",
    "SIZE_PATTERN",
    "Address",
    "Frequency",
    "MemorySize",
    "format_frequency",
    "format_size",
    "parse_address",
    "parse_frequency",
    "parse_size",
]

ADDRESS_LIMIT: Final = 2**64
"""One past the highest byte address: addresses are 64-bit."""

# A sign is matched only so that "-2GHz" gets a "must be positive" message
# rather than a bare "not a frequency".  The exponent is kept to three digits
# so that no input can overflow decimal arithmetic or build a huge int.
_QUANTITY_RE: Final = re.compile(
    r"\s*(?P<number>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?)"
    r"\s*(?P<unit>[A-Za-zµμ]*)\s*"
)

_FREQUENCY_FORMS: Final = (
    "use a number of Hz or a number with Hz, kHz, MHz or GHz "
    "(e.g. '2GHz', '800 MHz'), or a clock period with s, ms, us, ns or ps "
    "(e.g. '500ps')"
)
_SIZE_FORMS: Final = (
    "use a number of bytes or a number with B, KiB, MiB, GiB, TiB (binary) "
    "or kB, MB, GB, TB (decimal)"
)
_ADDRESS_FORMS: Final = (
    "use a non-negative integer below 2**64, in decimal or as 0x-prefixed hex"
)

# Prefixes of "Hz".  The prefix letter is case-insensitive only where that is
# unambiguous: "m" is milli, so "mhz" is refused rather than read as MHz.
_HZ_PREFIXES: Final[dict[str, int]] = {
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "g": 10**9,
}
# Clock periods, as gem5 accepts a latency wherever it wants a frequency.
_PERIOD_UNITS: Final[dict[str, Decimal]] = {
    "s": Decimal(1),
    "ms": Decimal("1e-3"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),  # MICRO SIGN
    "μs": Decimal("1e-6"),  # GREEK SMALL LETTER MU
    "ns": Decimal("1e-9"),
    "ps": Decimal("1e-12"),
}
_SIZE_UNITS: Final[dict[str, int]] = {
    "": 1,
    "B": 1,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
    "kB": 10**3,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
}
_BINARY_UNITS: Final = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
_FREQUENCY_UNITS: Final = (("GHz", 10**9), ("MHz", 10**6), ("kHz", 10**3))

_ADDRESS_RE: Final = re.compile(
    r"\s*(?:0[xX](?P<hex>(?:_?[0-9a-fA-F])+)|(?P<dec>\d(?:_?\d)*))\s*"
)

# JSON Schema patterns for the string forms.  They mirror the regexes above
# (ECMA-262 syntax, which these simple patterns share with Python's re); they
# cannot express the numeric limits, which the parsers still check.
_NUMBER_PATTERN = r"^\s*(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?\s*"
FREQUENCY_PATTERN: Final = _NUMBER_PATTERN + r"([kKMGg]?[Hh][Zz]|s|ms|us|µs|μs|ns|ps)?\s*$"
SIZE_PATTERN: Final = _NUMBER_PATTERN + r"(B|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)?\s*$"
ADDRESS_PATTERN: Final = r"^\s*(0[xX](_?[0-9a-fA-F])+|\d(_?\d)*)\s*$"


def _round_to_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def parse_frequency(value: str | float) -> int:
    """Return a frequency in Hz, rounded to the nearest Hz.

    Accepts a number of Hz, a string with Hz, kHz, MHz or GHz, or a clock
    period with s, ms, us, ns or ps (the frequency is then 1 / period).
    """
    # bool is an int subclass, but True is never a meant frequency.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        # pydantic turns only ValueError into a validation error.
        raise ValueError(f"{value!r} is not a frequency: {_FREQUENCY_FORMS}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{value!r} is not a frequency: it must be positive")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{value!r} is not a frequency: it must be positive")
        hz = Decimal(value)
    else:
        match = _QUANTITY_RE.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is not a frequency: {_FREQUENCY_FORMS}")
        number = Decimal(match["number"])
        unit = match["unit"]
        if number <= 0:
            raise ValueError(f"{value!r} is not a frequency: it must be positive")
        if unit in _PERIOD_UNITS:
            hz = 1 / (number * _PERIOD_UNITS[unit])
        elif unit == "" or unit.lower().endswith("hz"):
            prefix = unit[:-2]
            if prefix == "m":
                raise ValueError(
                    f"{value!r} is not a frequency: 'm' means milli; "
                    "write MHz for megahertz"
                )
            if prefix not in _HZ_PREFIXES:
                raise ValueError(f"{value!r} is not a frequency: {_FREQUENCY_FORMS}")
            hz = number * _HZ_PREFIXES[prefix]
        else:
            raise ValueError(f"{value!r} is not a frequency: {_FREQUENCY_FORMS}")
    result = _round_to_int(hz)
    if result < 1:
        raise ValueError(f"{value!r} is not a frequency: it is below 1 Hz")
    return result


def parse_size(value: str | int) -> int:
    """Return a size in bytes.

    Accepts a number of bytes, or a string with B, KiB, MiB, GiB, TiB
    (powers of 1024) or kB/KB, MB, GB, TB (powers of 1000), up to 2**64.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        # pydantic turns only ValueError into a validation error.
        raise ValueError(f"{value!r} is not a size: {_SIZE_FORMS}")
    if isinstance(value, int):
        size = Decimal(value)
    else:
        match = _QUANTITY_RE.fullmatch(value)
        if match is None or match["unit"] not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size: {_SIZE_FORMS}")
        size = Decimal(match["number"]) * _SIZE_UNITS[match["unit"]]
    if size < 0:
        raise ValueError(f"{value!r} is not a size: it must not be negative")
    # Nothing larger than the whole 64-bit address space can be meant.
    if size > ADDRESS_LIMIT:
        raise ValueError(f"{value!r} is not a size: it is larger than 2**64 bytes")
    if size != size.to_integral_value():
        raise ValueError(f"{value!r} is not a size: it is not a whole number of bytes")
    return int(size)


def parse_address(value: str | int) -> int:
    """Return a byte address: an int, or a decimal or ``0x`` hex string.

    Underscores may group digits (``"0xfee0_0000"``).  The result is below
    2**64.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        # pydantic turns only ValueError into a validation error.
        raise ValueError(f"{value!r} is not an address: {_ADDRESS_FORMS}")
    if isinstance(value, int):
        address = value
    else:
        match = _ADDRESS_RE.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is not an address: {_ADDRESS_FORMS}")
        if match["hex"] is not None:
            address = int(match["hex"].replace("_", ""), 16)
        else:
            address = int(match["dec"].replace("_", ""), 10)
    if not 0 <= address < ADDRESS_LIMIT:
        raise ValueError(
            f"{value!r} is not an address: it must be at least 0 and below 2**64"
        )
    return address


def format_size(size: int) -> str:
    """Render a size in the largest binary unit that holds it exactly."""
    if size < 0:
        raise ValueError(f"{size!r} is not a size: it must not be negative")
    for unit, scale in _BINARY_UNITS:
        if size and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def format_frequency(hz: int) -> str:
    """Render a frequency in the largest unit not above it, keeping every digit."""
    if hz <= 0:
        raise ValueError(f"{hz!r} is not a frequency: it must be positive")
    for unit, scale in _FREQUENCY_UNITS:
        if hz >= scale:
            # Decimal keeps the digits exact; "f" avoids exponent notation.
            scaled = (Decimal(hz) / scale).normalize()
            return f"{scaled:f} {unit}"
    return f"{hz} Hz"


Frequency = Annotated[
    int,
    BeforeValidator(parse_frequency),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": FREQUENCY_PATTERN},
            ],
            "examples": ["2GHz", "800 MHz", "500ps", 2000000000],
        },
        mode="validation",
    ),
]
"""A frequency in Hz; configs may write ``"2GHz"`` or a period ``"500ps"``."""

MemorySize = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": ADDRESS_LIMIT},
                {"type": "string", "pattern": SIZE_PATTERN},
            ],
            "examples": ["16MiB", "4KiB", "2GiB", 4096],
        },
        mode="validation",
    ),
]
"""A size in bytes; configs may write ``"16MiB"`` (binary) or ``"16MB"`` (decimal)."""

Address = Annotated[
    int,
    BeforeValidator(parse_address),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": ADDRESS_LIMIT - 1},
                {"type": "string", "pattern": ADDRESS_PATTERN},
            ],
            "examples": ["0x100000", "0xfee0_0000", 1048576],
        },
        mode="validation",
    ),
]
"""A 64-bit byte address; configs may write it in hex (``"0x100000"``)."""
