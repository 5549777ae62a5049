"""Tests of kvmbase.units: parsing, formatting and the pydantic types."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError

from kvmbase.units import (
    ADDRESS_PATTERN,
    FREQUENCY_PATTERN,
    SIZE_PATTERN,
    Address,
    Frequency,
    MemorySize,
    format_frequency,
    format_size,
    parse_address,
    parse_frequency,
    parse_size,
)

FREQUENCY_FORMS = (
    "use a number of Hz or a number with Hz, kHz, MHz or GHz "
    "(e.g. '2GHz', '800 MHz'), or a clock period with s, ms, us, ns or ps "
    "(e.g. '500ps')"
)
SIZE_FORMS = (
    "use a number of bytes or a number with B, KiB, MiB, GiB, TiB (binary) "
    "or kB, MB, GB, TB (decimal)"
)
ADDRESS_FORMS = (
    "use a non-negative integer below 2**64, in decimal or as 0x-prefixed hex"
)


# --------------------------------------------------------------------------
# Frequencies

FREQUENCIES = [
    (1, 1),
    (32768, 32768),
    ("32768", 32768),
    ("32768Hz", 32768),
    ("1 Hz", 1),
    ("2GHz", 2_000_000_000),
    ("2.5 GHz", 2_500_000_000),
    ("2.5GHz", 2_500_000_000),
    ("800MHz", 800_000_000),
    ("800 MHz", 800_000_000),
    ("32.768kHz", 32768),
    ("32.768 KHz", 32768),
    ("2ghz", 2_000_000_000),
    ("2 GHZ", 2_000_000_000),
    ("2 Ghz", 2_000_000_000),
    ("100 hz", 100),
    ("  3 GHz  ", 3_000_000_000),
    ("1e3kHz", 1_000_000),
    (".5GHz", 500_000_000),
    ("500ps", 2_000_000_000),
    ("1ns", 1_000_000_000),
    ("1 ns", 1_000_000_000),
    ("1us", 1_000_000),
    ("1µs", 1_000_000),
    ("1μs", 1_000_000),
    ("1ms", 1000),
    ("1s", 1),
    ("0.5s", 2),
    # A period that does not divide 1 s evenly rounds to the nearest Hz.
    ("3ps", 333_333_333_333),
    ("0.6Hz", 1),
    (2e9, 2_000_000_000),
    (2.5e9, 2_500_000_000),
]


@pytest.mark.parametrize(("given", "hz"), FREQUENCIES)
def test_parse_frequency(given: str | float, hz: int) -> None:
    result = parse_frequency(given)
    assert result == hz
    assert type(result) is int


@pytest.mark.parametrize(
    "given",
    [
        "2THz",
        "2 Hertz",
        "2 G",
        "GHz",
        "",
        "2 GHz 3",
        "two GHz",
        "2ks",
        "2 NS",
        "2fs",
        "0x10",
    ],
)
def test_parse_frequency_refuses_other_forms(given: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_frequency(given)
    assert str(caught.value) == f"{given!r} is not a frequency: {FREQUENCY_FORMS}"


@pytest.mark.parametrize("given", ["800mhz", "800mHz"])
def test_parse_frequency_refuses_milli_hertz_as_mega(given: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_frequency(given)
    assert str(caught.value) == (
        f"{given!r} is not a frequency: 'm' means milli; write MHz for megahertz"
    )


@pytest.mark.parametrize(
    "given", [0, -1, "0", "0GHz", "-2GHz", "0ps", 0.0, -1.5, float("inf"), float("nan")]
)
def test_parse_frequency_refuses_non_positive(given: str | float) -> None:
    with pytest.raises(ValueError) as caught:
        parse_frequency(given)
    assert str(caught.value) == f"{given!r} is not a frequency: it must be positive"


@pytest.mark.parametrize("given", ["0.4Hz", "2s", 0.3])
def test_parse_frequency_refuses_below_one_hz(given: str | float) -> None:
    with pytest.raises(ValueError) as caught:
        parse_frequency(given)
    assert str(caught.value) == f"{given!r} is not a frequency: it is below 1 Hz"


@pytest.mark.parametrize("given", [True, None, [2], b"2GHz"])
def test_parse_frequency_refuses_other_types(given: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_frequency(given)  # type: ignore[arg-type]
    assert str(caught.value) == f"{given!r} is not a frequency: {FREQUENCY_FORMS}"


@pytest.mark.parametrize(
    ("hz", "text"),
    [
        (1, "1 Hz"),
        (999, "999 Hz"),
        (1000, "1 kHz"),
        (32768, "32.768 kHz"),
        (800_000_000, "800 MHz"),
        (2_000_000_000, "2 GHz"),
        (2_500_000_000, "2.5 GHz"),
        (1_234_567_891, "1.234567891 GHz"),
        (10**12, "1000 GHz"),
    ],
)
def test_format_frequency(hz: int, text: str) -> None:
    assert format_frequency(hz) == text
    assert parse_frequency(text) == hz


@pytest.mark.parametrize("hz", [0, -5])
def test_format_frequency_refuses_non_positive(hz: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        format_frequency(hz)


# --------------------------------------------------------------------------
# Sizes

SIZES = [
    (0, 0),
    (4096, 4096),
    ("4096", 4096),
    ("4096B", 4096),
    ("4096 B", 4096),
    ("64KiB", 64 * 2**10),
    ("16MiB", 16 * 2**20),
    ("16 MiB", 16 * 2**20),
    ("2GiB", 2 * 2**30),
    ("1TiB", 2**40),
    ("1.5GiB", 3 * 2**29),
    ("1kB", 1000),
    ("1KB", 1000),
    ("16MB", 16 * 10**6),
    ("2GB", 2 * 10**9),
    ("1TB", 10**12),
    ("0.5KiB", 512),
    ("1e3B", 1000),
    (" 16 MiB ", 16 * 2**20),
    (2**64, 2**64),
]


@pytest.mark.parametrize(("given", "size"), SIZES)
def test_parse_size(given: str | int, size: int) -> None:
    result = parse_size(given)
    assert result == size
    assert type(result) is int


@pytest.mark.parametrize(
    "given",
    [
        "16 mebibytes",
        "16M",
        "16m",
        "16mb",
        "16MIB",
        "16Mib",
        "16 KB B",
        "MiB",
        "",
        "0x10",
        "1,5MiB",
    ],
)
def test_parse_size_refuses_other_forms(given: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(given)
    assert str(caught.value) == f"{given!r} is not a size: {SIZE_FORMS}"


def test_parse_size_message_matches_the_documented_example() -> None:
    with pytest.raises(ValueError) as caught:
        parse_size("16 mebibytes")
    assert str(caught.value) == (
        "'16 mebibytes' is not a size: use a number of bytes or a number with "
        "B, KiB, MiB, GiB, TiB (binary) or kB, MB, GB, TB (decimal)"
    )


@pytest.mark.parametrize("given", [-1, "-1", "-4KiB"])
def test_parse_size_refuses_negative(given: str | int) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(given)
    assert str(caught.value) == f"{given!r} is not a size: it must not be negative"


@pytest.mark.parametrize("given", ["0.5B", "1.0001KiB", "0.0001kB"])
def test_parse_size_refuses_fractions_of_a_byte(given: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(given)
    assert (
        str(caught.value)
        == f"{given!r} is not a size: it is not a whole number of bytes"
    )


@pytest.mark.parametrize("given", [2**64 + 1, "16777217TiB", "1e999TB"])
def test_parse_size_refuses_more_than_the_address_space(given: str | int) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(given)
    assert (
        str(caught.value) == f"{given!r} is not a size: it is larger than 2**64 bytes"
    )


@pytest.mark.parametrize("given", [True, 1.5, 4096.0, None, ["4KiB"]])
def test_parse_size_refuses_other_types(given: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(given)  # type: ignore[arg-type]
    assert str(caught.value) == f"{given!r} is not a size: {SIZE_FORMS}"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (4097, "4097 B"),
        (4096, "4 KiB"),
        (16 * 2**20, "16 MiB"),
        (3 * 2**29, "1536 MiB"),
        (2 * 2**30, "2 GiB"),
        (2**40, "1 TiB"),
        (16 * 10**6, "15625 KiB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size


def test_format_size_refuses_negative() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        format_size(-1)


# --------------------------------------------------------------------------
# Addresses

ADDRESSES = [
    (0, 0),
    (2**64 - 1, 2**64 - 1),
    ("0", 0),
    ("1048576", 0x100000),
    ("0x100000", 0x100000),
    ("0X100000", 0x100000),
    ("0xFEE00000", 0xFEE00000),
    ("0xfee0_0000", 0xFEE00000),
    ("1_000", 1000),
    ("0xffffffffffffffff", 2**64 - 1),
    (" 0x10 ", 16),
    ("010", 10),
    ("0x_10", 16),
]


@pytest.mark.parametrize(("given", "address"), ADDRESSES)
def test_parse_address(given: str | int, address: int) -> None:
    assert parse_address(given) == address


@pytest.mark.parametrize(
    "given",
    [
        "0x",
        "0xg",
        "fee00000",
        "-1",
        "1.5",
        "0b101",
        "0o17",
        "1MiB",
        "",
        "0x1__0",
        "1__0",
        "_1",
    ],
)
def test_parse_address_refuses_other_forms(given: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_address(given)
    assert str(caught.value) == f"{given!r} is not an address: {ADDRESS_FORMS}"


@pytest.mark.parametrize(
    "given", [-1, 2**64, "0x10000000000000000", "18446744073709551616"]
)
def test_parse_address_refuses_out_of_range(given: str | int) -> None:
    with pytest.raises(ValueError) as caught:
        parse_address(given)
    assert str(caught.value) == (
        f"{given!r} is not an address: it must be at least 0 and below 2**64"
    )


@pytest.mark.parametrize("given", [True, 4096.0, None])
def test_parse_address_refuses_other_types(given: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_address(given)  # type: ignore[arg-type]
    assert str(caught.value) == f"{given!r} is not an address: {ADDRESS_FORMS}"


# --------------------------------------------------------------------------
# The pydantic types


class Quantities(BaseModel):
    clock: Frequency
    size: MemorySize
    base: Address


def test_annotated_types_accept_strings_and_store_ints() -> None:
    model = Quantities.model_validate(
        {"clock": "2GHz", "size": "16MiB", "base": "0x1000"}
    )
    assert (model.clock, model.size, model.base) == (2_000_000_000, 16 * 2**20, 0x1000)
    assert model.model_dump(mode="json") == {
        "clock": 2_000_000_000,
        "size": 16 * 2**20,
        "base": 0x1000,
    }
    assert Quantities.model_validate(model.model_dump(mode="json")) == model


def test_annotated_types_accept_json_strings() -> None:
    model = Quantities.model_validate_json(
        '{"clock": "500ps", "size": 4096, "base": "4096"}'
    )
    assert (model.clock, model.size, model.base) == (2_000_000_000, 4096, 4096)


def test_annotated_types_report_the_parser_message() -> None:
    with pytest.raises(ValidationError) as caught:
        Quantities.model_validate(
            {"clock": "2THz", "size": "16 mebibytes", "base": "-1"}
        )
    errors = {e["loc"]: e for e in caught.value.errors()}
    assert set(errors) == {("clock",), ("size",), ("base",)}
    assert (
        str(errors[("size",)]["ctx"]["error"])
        == f"'16 mebibytes' is not a size: {SIZE_FORMS}"
    )
    assert errors[("clock",)]["input"] == "2THz"


def test_json_schema_says_string_or_number() -> None:
    properties = Quantities.model_json_schema()["properties"]
    assert [alt["type"] for alt in properties["clock"]["anyOf"]] == ["number", "string"]
    assert [alt["type"] for alt in properties["size"]["anyOf"]] == ["integer", "string"]
    assert [alt["type"] for alt in properties["base"]["anyOf"]] == ["integer", "string"]
    assert properties["base"]["anyOf"][0]["maximum"] == 2**64 - 1
    # Serialisation stores ints, and the serialisation schema says so.
    serial = Quantities.model_json_schema(mode="serialization")["properties"]
    assert serial["size"]["type"] == "integer"


@pytest.mark.parametrize(
    ("pattern", "accepted", "refused"),
    [
        (
            FREQUENCY_PATTERN,
            [g for g, _ in FREQUENCIES if isinstance(g, str)],
            ["2THz", "2 Hertz", "800mhz", "-2GHz", "0x10", "2 NS"],
        ),
        (
            SIZE_PATTERN,
            [g for g, _ in SIZES if isinstance(g, str)],
            ["16 mebibytes", "16M", "16mb", "-1", "0x10"],
        ),
        (
            ADDRESS_PATTERN,
            [g for g, _ in ADDRESSES if isinstance(g, str)],
            ["0x", "fee00000", "-1", "1.5", "0b101", "1__0", "_1"],
        ),
    ],
)
def test_schema_patterns_match_what_the_parsers_accept(
    pattern: str, accepted: list[str], refused: list[str]
) -> None:
    for text in accepted:
        assert re.search(pattern, text), text
    for text in refused:
        assert not re.search(pattern, text), text
