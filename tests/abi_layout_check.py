"""Shared machinery of the ABI layout tests (``tests/*/test_abi_layout.py``).

kvmbase declares the kernel's structs to cffi by hand, in ABI mode, so
nothing but a test ties those declarations to the real ABI.  The layout
tests turn every declaration on ``kvmbase.abi.ffi`` into *checks*: the size
and alignment of each struct, and the offset and size (and, for integers,
the signedness) of each field, recursing into anonymous nested structs and
unions; and the value of each constant.  Each check pairs the value cffi
computes with a C expression; one generated C program, compiled with
``gcc`` against the host's own headers, prints the C side, and a test
compares the two.

This is a plain module, not a conftest: the test modules import it (the
``tests/`` directory is on ``sys.path`` because ``tests/conftest.py`` lives
there).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kvmbase.abi import ffi

#: The reason prefix that the project's skip rule (tests/conftest.py) accepts.
HOST_LACKS = "host lacks: "

#: How a private ``kvmbase_*`` field maps to its C counterpart: a member
#: designator (``"_sigev_un._tid"``), an explicit ``(offset, size)`` pair of C
#: expressions (for a word the C struct splits into bitfields), or ``None``
#: for padding that only the cffi declaration has.
FieldMap = Mapping[str, str | tuple[str, str] | None]


@dataclass(frozen=True)
class Alias:
    """The C type that a private ``kvmbase_*`` struct stands in for."""

    c_type: str
    fields: FieldMap = field(default_factory=dict)
    #: A C expression for the size to compare with, when not ``sizeof``.
    size: str | None = None


@dataclass(frozen=True)
class Check:
    """One value that cffi and the host's C headers must agree on."""

    key: str  # unique, without spaces: the C program prints it
    what: str  # what is compared, for failure messages
    c_expr: str
    expected: int  # the value on the Python (cffi) side
    macro: str | None = None  # the C side is ``#ifdef``-guarded on this macro
    optional: bool = False  # a macro the header may lack


# -- finding the declarations --------------------------------------------------


def import_all(package: str) -> None:
    """Import ``package`` and every module in it, so all their cdefs are made."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)


_LIST_STRUCTS = """
import json, sys
sys.path.insert(0, {here!r})
from abi_layout_check import import_all
from kvmbase.abi import ffi
seen, out = set(), {{}}
for package in {packages!r}:
    import_all(package)
    structs = ffi.list_types()[1]
    out[package] = [s for s in structs if s not in seen]
    seen.update(structs)
print(json.dumps(out))
"""


@cache
def declared_structs(packages: tuple[str, ...]) -> dict[str, list[str]]:
    """The structs each package declares on the shared ffi.

    Every package in ``packages`` is imported in turn in a fresh
    interpreter, so the answer does not depend on what this test session
    happens to have imported already: a package owns the structs that
    appear when it is imported after the ones before it.
    """
    code = _LIST_STRUCTS.format(here=str(Path(__file__).parent), packages=packages)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


# -- struct checks -----------------------------------------------------------------


def _is_anonymous(ctype: Any) -> bool:
    """Whether a cffi struct/union type has no tag (cffi names it ``$n``)."""
    return ctype.kind in ("struct", "union") and "$" in ctype.cname


def _leaf_fields(ctype: Any, prefix: str = "", base: int = 0) -> Iterator[tuple[str, Any, int]]:
    """(dotted name, cffi field, absolute offset) of every member, nested ones too.

    Members of anonymous struct or union type (``kvm_run.io``) are yielded
    and then recursed into (``io.port``); members without a name, if cffi
    lists them at all, are recursed into without adding to the name.
    """
    for name, fld in ctype.fields:
        offset = base + fld.offset
        if not name:
            yield from _leaf_fields(fld.type, prefix, offset)
            continue
        dotted = prefix + name
        yield dotted, fld, offset
        if _is_anonymous(fld.type):
            yield from _leaf_fields(fld.type, dotted + ".", offset)


_NOT_INTEGER = frozenset(
    {"char", "_Bool", "float", "double", "long double", "wchar_t", "char16_t", "char32_t"}
)


def _is_integer(ctype: Any) -> bool:
    """Whether a cffi type is a primitive integer type."""
    return bool(ctype.kind == "primitive" and ctype.cname not in _NOT_INTEGER)


def _member_checks(
    struct: str, c_type: str, dotted: str, fld: Any, offset: int, c_member: str | tuple[str, str]
) -> Iterator[Check]:
    """Offset, size and signedness checks of one member."""
    tag = f"{struct}.{dotted}"
    if isinstance(c_member, tuple):
        c_offset, c_size = c_member
        yield Check(f"{struct}:offset:{dotted}", f"offset of {tag}", c_offset, offset)
        yield Check(f"{struct}:size:{dotted}", f"size of {tag}", c_size, ffi.sizeof(fld.type))
        return
    member = f"(({c_type} *)0)->{c_member}"
    yield Check(
        f"{struct}:offset:{dotted}",
        f"offset of {tag}",
        f"offsetof({c_type}, {c_member})",
        offset,
    )
    if fld.type.kind == "array" and fld.type.length is None:
        # A flexible array member has no size; compare its element size.
        yield Check(
            f"{struct}:size:{dotted}[0]",
            f"element size of flexible array {tag}[]",
            f"sizeof({member}[0])",
            ffi.sizeof(fld.type.item),
        )
    else:
        yield Check(
            f"{struct}:size:{dotted}", f"size of {tag}", f"sizeof({member})", ffi.sizeof(fld.type)
        )
    if _is_integer(fld.type):
        yield Check(
            f"{struct}:signed:{dotted}",
            f"signedness of {tag} (1 = signed)",
            f"((__typeof__({member}))-1 < 0)",
            int(int(ffi.cast(fld.type, -1)) < 0),
        )


def struct_checks(struct: str, alias: Alias | None = None) -> list[Check]:
    """All checks of ``struct NAME`` as declared on the shared ffi.

    With an ``alias``, the C side is ``alias.c_type``: fields map through
    ``alias.fields`` (unlisted ones keep their name), and the signedness of
    fields is not compared (the C types may be unions such as ``sigval``).
    """
    ctype = ffi.typeof(f"struct {struct}")
    c_type = alias.c_type if alias else f"struct {struct}"
    size = alias.size if alias and alias.size else f"sizeof({c_type})"
    checks = [
        Check(f"{struct}:sizeof", f"size of struct {struct}", size, ffi.sizeof(ctype)),
        Check(
            f"{struct}:alignof",
            f"alignment of struct {struct}",
            f"_Alignof({c_type})",
            ffi.alignof(ctype),
        ),
    ]
    for dotted, fld, offset in _leaf_fields(ctype):
        c_member = alias.fields.get(dotted, dotted) if alias else dotted
        if c_member is None:
            continue
        for check in _member_checks(struct, c_type, dotted, fld, offset, c_member):
            if alias and ":signed:" in check.key:
                continue
            checks.append(check)
    return checks


# -- constant checks ---------------------------------------------------------------


def constant_checks(values: Mapping[str, int], *, optional: bool = False) -> list[Check]:
    """Checks that each macro named in ``values`` has that value in C."""
    return [
        Check(f"const:{name}", name, name, value, macro=name, optional=optional)
        for name, value in sorted(values.items())
    ]


def module_constants(module: ModuleType, prefix: str) -> dict[str, int]:
    """The module-level ints of ``module`` whose names start with ``prefix``."""
    return {
        name: value
        for name, value in vars(module).items()
        if name.startswith(prefix) and isinstance(value, int) and not isinstance(value, bool)
    }


def ioctl_constants(module: ModuleType, ioctl_names: Mapping[int, str]) -> dict[str, int]:
    """The ``KVM_*`` ints of ``module`` that name ioctl requests."""
    names = set(ioctl_names.values())
    return {
        name: value for name, value in module_constants(module, "KVM_").items() if name in names
    }


# -- the C program -------------------------------------------------------------------

_PROLOGUE = """\
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
{includes}

#ifndef PAGE_SIZE
/* KVM_COALESCED_MMIO_MAX is defined in terms of the kernel's PAGE_SIZE. */
#define PAGE_SIZE ((unsigned long)sysconf(_SC_PAGESIZE))
#endif

static void emit(const char *key, unsigned long long value)
{{
    printf("%s %llu\\n", key, value);
}}

static void missing(const char *key)
{{
    printf("%s -\\n", key);
}}

int main(void)
{{
"""


def c_program(headers: Sequence[str], checks: Iterable[Check]) -> str:
    """A C program that prints ``key value`` (or ``key -``) for every check."""
    lines = [_PROLOGUE.format(includes="\n".join(f"#include <{h}>" for h in headers))]
    for check in checks:
        line = f'    emit("{check.key}", (unsigned long long)({check.c_expr}));'
        if check.macro:
            line = f'#ifdef {check.macro}\n{line}\n#else\n    missing("{check.key}");\n#endif'
        lines.append(line)
    lines.append("    return 0;\n}\n")
    return "\n".join(lines)


_MISSING_HEADER = re.compile(r"fatal error: (\S+): No such file or directory")


def host_values(
    workdir: Path, headers: Sequence[str], checks: Sequence[Check]
) -> dict[str, int | None]:
    """Compile and run the program for ``checks``; the C value of each key.

    Skips the calling test (for what the host lacks) without ``gcc`` or
    without one of the headers.  A missing macro maps to ``None``.
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip(HOST_LACKS + "gcc")
    source = workdir / "abi_layout.c"
    binary = workdir / "abi_layout"
    source.write_text(c_program(headers, checks))
    built = subprocess.run(
        [gcc, "-std=gnu11", "-O0", "-w", "-o", str(binary), str(source)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        lacking = _MISSING_HEADER.search(built.stderr)
        if lacking:
            pytest.skip(HOST_LACKS + f"<{lacking.group(1)}>")
        pytest.fail(f"gcc could not compile {source}:\n{built.stderr}", pytrace=False)
    ran = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
    values: dict[str, int | None] = {}
    for line in ran.stdout.splitlines():
        key, value = line.split()
        values[key] = None if value == "-" else int(value)
    return values


def _show(value: int) -> str:
    """An int in decimal, and in hex too when that reads better."""
    return str(value) if value < 256 else f"{value} ({value:#x})"


def mismatches(checks: Iterable[Check], values: Mapping[str, int | None], header: str) -> list[str]:
    """One line for every check where cffi and the host's C disagree."""
    lines = []
    for check in checks:
        actual = values[check.key]
        if actual is None:
            if not check.optional:
                lines.append(f"{check.what}: cffi {_show(check.expected)}, {header} lacks it")
        elif actual != check.expected:
            lines.append(
                f"{check.what}: cffi {_show(check.expected)}, {header} {_show(actual)}"
                f"  [{check.c_expr}]"
            )
    return lines
