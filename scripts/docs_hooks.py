"""MkDocs hooks for the documentation site (``mkdocs.yml`` names this file).

At build time they generate, from the installed code, the pages no one
should keep by hand:

- ``reference/config.md``: the machine config keys, from the JSON Schema
  (``kvmbase.config.machine_json_schema``) with every installed plugin's
  section;
- ``reference/cli.md``: every ``kvmbase`` command, plugin commands
  included, from the click command tree;
- ``reference/hooks.md``: the pluggy hook specifications, from
  ``kvmbase/src/kvmbase/hookspecs.py``;
- ``benchmarks.md``: ``bench/README.md``, which lives beside the benchmarks.

They also map links from pages in ``docs/`` to files outside it (which work
when the Markdown is read in the repository) onto the site's pages.

The module also holds a griffe extension, :class:`SphinxRoles`, that turns
the ``:meth:`x``` roles of the docstrings into plain code spans for
mkdocstrings.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import griffe
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent

# Files outside docs/ that pages link to, and the site page each becomes.
OUTSIDE_PAGES = {"../bench/README.md": "benchmarks.md"}

# Sphinx cross-reference roles in docstrings: :meth:`name` and its kin.
_ROLE = re.compile(r":(?:meth|attr|class|func|data|mod|exc|obj):`~?([^`]+)`")


# ----------------------------------------------------------------------
# MkDocs events
# ----------------------------------------------------------------------
def on_files(files: Files, config: MkDocsConfig) -> Files:
    generated = {
        "reference/config.md": config_reference(),
        "reference/cli.md": cli_reference(),
        "reference/hooks.md": hooks_reference(),
        "benchmarks.md": benchmarks_page(),
    }
    for src_uri, content in generated.items():
        files.append(File.generated(config, src_uri, content=content))
    return files


_OUTSIDE_LINK = re.compile(r"\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Point links to files outside docs/ at their site pages."""
    depth = page.file.src_uri.count("/")

    def replace(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        # the link as seen from docs/ itself
        relative = target.removeprefix("../" * depth) if depth else target
        page_uri = OUTSIDE_PAGES.get(relative)
        if page_uri is None:
            return match.group(0)  # left for MkDocs to report
        return f"]({'../' * depth}{page_uri}{anchor})"

    return _OUTSIDE_LINK.sub(replace, markdown)


# ----------------------------------------------------------------------
# bench/README.md
# ----------------------------------------------------------------------
def benchmarks_page() -> str:
    text = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    # Its links into docs/ become links between site pages; links to the
    # benchmark sources name files of the repository.
    text = re.sub(r"\]\(\.\./docs/", "](", text)
    return (
        "<!-- generated from bench/README.md by scripts/docs_hooks.py -->\n"
        + text
        + "\n\n*This page is `bench/README.md` of the repository; the files it names "
        "are in `bench/`.*\n"
    )


# ----------------------------------------------------------------------
# Markdown helpers
# ----------------------------------------------------------------------
def _cell(text: object) -> str:
    """Text for one table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _plain(text: str) -> str:
    """Docstring text as Markdown: Sphinx roles and ``literals`` as code spans."""
    return _ROLE.sub(r"`\1`", text).replace("``", "`")


def _code(value: str) -> str:
    fence = "``" if "`" in value else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{value}{pad}{fence}"


# ----------------------------------------------------------------------
# The config reference
# ----------------------------------------------------------------------
_U64 = 2**63


class _ConfigSections:
    """Walks the machine config's JSON Schema and renders one table per section."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = schema.get("$defs", {})
        self.rendered: dict[str, str] = {}  # def name -> anchor of its first section
        self.out: list[str] = []

    # -- schema helpers -------------------------------------------------
    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = node.get("$ref")
        return self.defs[ref.rsplit("/", 1)[-1]] if ref else node

    @staticmethod
    def ref_name(node: Mapping[str, Any]) -> str | None:
        ref = node.get("$ref")
        return ref.rsplit("/", 1)[-1] if ref else None

    @staticmethod
    def non_null(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        if "anyOf" in node:
            return [n for n in node["anyOf"] if n.get("type") != "null"]
        return [node]

    def is_section(self, node: Mapping[str, Any]) -> bool:
        name = self.ref_name(node)
        return name is not None and "properties" in self.defs[name]

    # -- rendering of types and defaults --------------------------------
    def forms(self, node: Mapping[str, Any], anchors: Mapping[str, str]) -> str:
        parts = [self.form(n, anchors) for n in self.non_null(node)]
        text = " or ".join(dict.fromkeys(p for p in parts if p))
        examples = node.get("examples") or [
            e for n in self.non_null(node) for e in n.get("examples", [])
        ]
        if examples:
            shown = ", ".join(_code(json.dumps(e)) for e in examples[:2])
            text += f" (e.g. {shown})"
        return text

    def form(self, node: Mapping[str, Any], anchors: Mapping[str, str]) -> str:
        name = self.ref_name(node)
        if name is not None:
            target = self.defs[name]
            if "properties" in target:
                anchor = anchors.get(name)
                return f"table, see [{name}](#{anchor})" if anchor else f"table ({name})"
            return self.form(target, anchors)
        if "anyOf" in node:
            return " or ".join(self.form(n, anchors) for n in self.non_null(node))
        if "const" in node:
            return _code(json.dumps(node["const"]))
        if "enum" in node:
            return "one of " + ", ".join(_code(json.dumps(v)) for v in node["enum"])
        kind = node.get("type")
        if kind == "array":
            items = node.get("items", {})
            if "oneOf" in items:
                return "list of tables (one per `type`, below)"
            return "list of " + (self.form(items, anchors) or "values")
        if kind == "object":
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                return "table of name → " + self.form(extra, anchors)
            return "table"
        if kind in ("integer", "number"):
            text = kind
            low = node.get("minimum", node.get("exclusiveMinimum"))
            high = node.get("maximum", node.get("exclusiveMaximum"))
            bounds = []
            if low is not None:
                bounds.append((">" if "exclusiveMinimum" in node else "≥") + f" {low}")
            if high is not None and high < _U64:
                bounds.append(("<" if "exclusiveMaximum" in node else "≤") + f" {high}")
            if bounds:
                text += " " + ", ".join(bounds)
            return text
        if kind == "string":
            if "0[xX]" in node.get("pattern", ""):
                return "string (decimal or hex)"
            if "pattern" in node:
                return "string with a unit"
            return "string"
        if kind == "boolean":
            return "boolean"
        return _code(json.dumps(dict(node))) if node else "any"

    def default(self, node: Mapping[str, Any], required: bool) -> str:
        if required:
            return "required"
        if "default" not in node:
            if any(self.is_section(n) for n in self.non_null(node)):
                return "its keys' defaults"
            return "see description"
        value = node["default"]
        if value is None:
            return "unset"
        hex_ok = any("0[xX]" in n.get("pattern", "") for n in self._leaves(node))
        if isinstance(value, int) and not isinstance(value, bool) and hex_ok and value > 9:
            return _code(hex(value))
        return _code(json.dumps(value))

    def _leaves(self, node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        for n in node.get("anyOf", [node]):
            if "anyOf" in n:
                yield from self._leaves(n)
            else:
                yield n

    # -- sections -------------------------------------------------------
    def section(
        self, title: str, anchor: str, model: Mapping[str, Any], fixed: Mapping[str, Any]
    ) -> None:
        """One table for ``model``, then a section for each table inside it."""
        subsections: list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]] = []
        anchors: dict[str, str] = dict(self.rendered)
        if "title" in model:
            anchors.setdefault(model["title"], anchor)
        path = title.strip("[]")
        for key, prop in model.get("properties", {}).items():
            sub = f"{path}.{key}" if path else key
            sub_anchor = re.sub(r"[^a-z0-9]+", "-", sub.lower()).strip("-")
            for node in self.non_null(prop):
                items = node.get("items", {}) if node.get("type") == "array" else {}
                mapping = items.get("discriminator", {}).get("mapping", {})
                for kind, target in mapping.items():
                    field = items["discriminator"]["propertyName"]
                    def_name = target.rsplit("/", 1)[-1]
                    subsections.append(
                        (f"[[{sub}]]", f"{sub_anchor}-{kind}", self.defs[def_name], {field: kind})
                    )
                for sub_title, inner in ((f"[{sub}]", node), (f"[[{sub}]]", items)):
                    ref = self.ref_name(inner)
                    if ref is not None and self.is_section(inner) and ref not in anchors:
                        anchors[ref] = sub_anchor
                        subsections.append((sub_title, sub_anchor, self.resolve(inner), {}))
        self.rendered.update(anchors)

        heading = "Top level" if not path else _code(title)
        if fixed:
            heading += " with " + ", ".join(
                _code(f"{k} = {json.dumps(v)}") for k, v in fixed.items()
            )
        self.out.append(f"## {heading} {{ #{anchor} }}\n")
        if model.get("description"):
            self.out.append(_plain(inspect.cleandoc(model["description"])) + "\n")
        required = set(model.get("required", ()))
        self.out.append("| key | type / forms | default | description |")
        self.out.append("|---|---|---|---|")
        for key, prop in model.get("properties", {}).items():
            if key in fixed:
                forms = _code(json.dumps(fixed[key]))
                default = "required"
            else:
                forms = self.forms(prop, anchors)
                default = self.default(prop, key in required)
            self.out.append(
                f"| {_code(key)} | {_cell(forms)} | {_cell(default)} "
                f"| {_cell(_plain(prop.get('description', '')))} |"
            )
        self.out.append("")
        for sub_title, sub_anchor, sub_model, sub_fixed in subsections:
            self.section(sub_title, sub_anchor, sub_model, sub_fixed)


def config_reference() -> str:
    from kvmbase.config import machine_json_schema
    from kvmbase.plugins import architectures, config_models

    schema = machine_json_schema(config_models())
    arches = architectures()
    installed = ", ".join(
        f"`{name}` ({arch.distribution})" for name, arch in sorted(arches.items())
    )
    walker = _ConfigSections(schema)
    walker.section("", "top-level", schema, {})
    head = f"""<!-- generated by scripts/docs_hooks.py from kvmbase.config.machine_json_schema -->
# Machine config reference

Every key of a machine config file (TOML, YAML or JSON), generated from the
JSON Schema that `kvmbase config schema` prints. Each architecture plugin
adds its own section, named after the architecture; this page was built with
these plugins installed: {installed}.

Sections are written as TOML tables (`[x86.cpuid]`); a list of tables is
`[[devices]]`. Quantities take units or plain numbers (see
[How to write quantities](../guide.md#how-to-write-quantities)), and
`kvmbase config check FILE` validates a file against all of this. The
user guide explains the sections with examples:
[Machine config files](../guide.md#machine-config-files).

"""
    return head + "\n".join(walker.out)


# ----------------------------------------------------------------------
# The CLI reference
# ----------------------------------------------------------------------
def _help_paragraphs(text: str) -> str:
    """click help text as Markdown; ``\\b`` paragraphs stay as they are."""
    out = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if paragraph.startswith("\b"):
            out.append("```text\n" + paragraph.lstrip("\b").strip("\n") + "\n```")
        else:
            out.append(_plain(" ".join(paragraph.split())))
    return "\n\n".join(out)


def _command_anchor(path: list[str]) -> str:
    return "-".join(path)


def _walk_commands(
    command: click.Command, ctx: click.Context, path: list[str]
) -> Iterator[tuple[click.Command, click.Context, list[str]]]:
    yield command, ctx, path
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _walk_commands(sub, click.Context(sub, info_name=name, parent=ctx),
                                      [*path, name])


def _origin(command: click.Command) -> str | None:
    callback = inspect.unwrap(command.callback) if command.callback else None
    module = getattr(callback, "__module__", "") or ""
    package = module.split(".", 1)[0]
    return None if package in ("", "kvmbase") else package


def cli_reference() -> str:
    from kvmbase import cli as cli_module

    cli_module._add_plugin_commands()  # what main() does: plugin commands (exec) too
    root = cli_module.cli
    out = [
        "<!-- generated by scripts/docs_hooks.py from the click commands of kvmbase.cli -->",
        "# Command-line reference\n",
        "Every `kvmbase` command with its usage and options, generated from the "
        "click command tree, including the commands that installed plugins add "
        "through the `kvmbase_add_commands` hook. `kvmbase COMMAND --help` prints "
        "the same. The [user guide](../guide.md#the-kvmbase-command) shows the "
        "commands at work.\n",
    ]
    root_ctx = click.Context(root, info_name="kvmbase", **root.context_settings)
    for command, ctx, path in _walk_commands(root, root_ctx, ["kvmbase"]):
        out.append(f"## `{' '.join(path)}` {{ #{_command_anchor(path)} }}\n")
        origin = _origin(command)
        if origin:
            out.append(
                f"*Added by the plugin package `{origin}` through "
                "[`kvmbase_add_commands`](hooks.md#kvmbase_add_commands).*\n"
            )
        if command.help:
            out.append(_help_paragraphs(command.help) + "\n")
        out.append("```text\n" + command.get_usage(ctx) + "\n```\n")
        records = [
            record for param in command.get_params(ctx)
            if not isinstance(param, click.Argument)
            and (record := param.get_help_record(ctx)) is not None
        ]
        if records:
            out.append("| option | description |")
            out.append("|---|---|")
            for names, help_text in records:
                out.append(f"| {_code(names)} | {_cell(help_text)} |")
            out.append("")
        if isinstance(command, click.Group):
            out.append("| command | does |")
            out.append("|---|---|")
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is None or sub.hidden:
                    continue
                link = _command_anchor([*path, name])
                out.append(
                    f"| [`{' '.join([*path, name])}`](#{link}) "
                    f"| {_cell(sub.get_short_help_str(limit=200))} |"
                )
            out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------
# The hook reference
# ----------------------------------------------------------------------
def hooks_reference() -> str:
    from kvmbase import hookspecs
    from kvmbase.cli import _hook_implementations

    source_path = Path(inspect.getfile(hookspecs))
    tree = ast.parse(source_path.read_text(encoding="utf-8"))
    implementations = _hook_implementations()
    out = [
        "<!-- generated by scripts/docs_hooks.py from kvmbase/src/kvmbase/hookspecs.py -->",
        "# Plugin hook reference\n",
        _help_paragraphs(ast.get_docstring(tree) or "") + "\n",
        "Plugins implement these with `@kvmbase.hookimpl` in a module registered "
        "under the `kvmbase` entry-point group; [Writing a plugin](../plugins.md#hooks) "
        "shows an extension plugin that implements every hook, with notes on each. "
        "`kvmbase plugins --hooks` lists which installed plugin implements which.\n",
    ]
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if not any(ast.unparse(d) == "hookspec" for d in node.decorator_list):
            continue
        returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
        signature = f"def {node.name}({ast.unparse(node.args)}){returns}"
        out.append(f"## `{node.name}` {{ #{node.name} }}\n")
        out.append("```python\n" + signature + "\n```\n")
        out.append(_help_paragraphs(ast.get_docstring(node) or "") + "\n")
        plugins = sorted(implementations.get(node.name, []))
        shown = ", ".join(_code(p) for p in plugins) if plugins else "none"
        out.append(f"Implemented by the plugins installed when this page was built: {shown}.\n")
    return "\n".join(out)


# ----------------------------------------------------------------------
# Griffe extension: Sphinx roles in docstrings
# ----------------------------------------------------------------------


class SphinxRoles(griffe.Extension):
    """Render ``:meth:`name``` and its kin as a code span ```name```."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(r"`\1`", obj.docstring.value)
