"""mkdocs hooks: the reference pages generated from the code at build time (`mkdocs build --strict`).

A page asks for a generated block with a marker line; the build fails (strict) when a generator finds the
code and the page disagree, so the reference cannot go stale:

- `<!-- generated: route_table -->` and `<!-- generated: operations -->`: every operation of `docs/openapi.json`
  (the contract `make openapi` writes): a route table; each operation's parameters, body and answers, and
  every schema.
- `<!-- generated: errors -->`: every error class under `chalicelib.errors.RewardgateError`: its `code`, the
  HTTP status the edge gives it (`chalicelib.http.status_for`), its title; open-live errors with their code.
- `<!-- generated: settings -->`: every `RG_*` variable the settings modules read (found in their source,
  with its default and minimum), with its meaning from `docs/reference/settings.md.yml`; a variable the
  code reads without a meaning there, or a meaning for a variable the code no longer reads, fails the build.

The generators only read code; none changes it. `site_url` (the base of the alarm runbook links) is read
from `infra/alarms.py` `DOCS_URL`, the one place it is written.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / "docs" / "openapi.json"
SETTINGS_MODULES = ("chalicelib/settings.py", "chalicelib/play/config.py", "chalicelib/live/config.py",
                    "chalicelib/observability.py")
MEANINGS = ROOT / "docs" / "reference" / "settings.md.yml"
ALARMS = ROOT / "infra" / "alarms.py"
MARKER = re.compile(r"^<!-- generated: (\w+) -->$", re.M)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# --- site_url --------------------------------------------------------------------------------------


def docs_url() -> str:
    """`DOCS_URL` as `infra/alarms.py` writes it (parsed, not imported: the docs build needs no AWS code)."""
    for node in ast.parse(ALARMS.read_text()).body:
        if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["DOCS_URL"]
                and isinstance(node.value, ast.Constant)):
            return str(node.value.value)
    raise PluginError(f"{ALARMS.relative_to(ROOT)} has no DOCS_URL = '...': the alarm runbook links need it")


def on_config(config: Any) -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    config["site_url"] = docs_url()
    return config


# --- HTTP API from openapi.json --------------------------------------------------------------------


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def _type(schema: dict[str, Any]) -> str:
    """A short type: `int ≥ 1`, `string`, `[GrantBody]`, `A | null`."""
    if name := _ref_name(schema):
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " \\| ".join(_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    bounds = []
    for key, sign in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("maxLength", "length ≤")):
        if key in schema:
            bounds.append(f"{sign} {schema[key]}")
    return f"{kind}" + (f" ({', '.join(bounds)})" if bounds else "")


def _fields(schema: dict[str, Any]) -> list[str]:
    props = schema.get("properties", {})
    if not props:
        return []
    required = set(schema.get("required", ()))
    rows = ["| field | type | required | meaning |", "| --- | --- | --- | --- |"]
    for name, prop in props.items():
        rows.append(f"| `{name}` | {_type(prop)} | {'yes' if name in required else ''} | "
                    f"{_cell(prop.get('description', ''))} |")
    return rows


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, methods in doc["paths"].items() for method, op in methods.items()]


def route_table_markdown(doc: dict[str, Any]) -> str:
    """One row per operation: method and path (linked to its section), caller, summary, every answer."""
    out = ["| route | caller | what | answers |", "| --- | --- | --- | --- |"]
    for method, path, op in _operations(doc):
        answers = []
        for status, response in op["responses"].items():
            codes = response.get("x-problem-codes")
            answers.append((f"{status} " + (" ".join(f"`{c}`" for c in codes) if codes else "")).rstrip())
        out.append(f"| [`{method} {path}`](#{op['operationId']}) | {op.get('x-rewardgate-access', '')} | "
                   f"{_cell(op['summary'])} | {' · '.join(answers)} |")
    return "\n".join(out)


def operations_markdown(doc: dict[str, Any]) -> str:
    """Each operation's parameters, body and answers, then every schema of the document."""
    out = ["## Operations", ""]
    for method, path, op in _operations(doc):
        out += [f"### `{method} {path}` {{#{op['operationId']}}}", "",
                f"{op.get('description') or op['summary']}", "",
                f"Caller: **{op.get('x-rewardgate-access', '')}** · operation id `{op['operationId']}`", ""]
        params = op.get("parameters", [])
        if params:
            out += ["| parameter | in | type | required | meaning |", "| --- | --- | --- | --- | --- |"]
            out += [f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} | "
                    f"{'yes' if p.get('required') else ''} | {_cell(p.get('description', ''))} |" for p in params]
            out.append("")
        body = op.get("requestBody", {}).get("content", {})
        for media, content in body.items():
            out += [f"Body (`{media}`): {_type(content.get('schema', {}))}", ""]
        for status, response in op["responses"].items():
            codes = response.get("x-problem-codes")
            schemas = [f"{_type(c.get('schema', {}))} (`{m}`)" for m, c in response.get("content", {}).items()]
            what = ", ".join(f"`{c}`" for c in codes) if codes else response.get("description", "")
            shown = f": {', '.join(schemas)}" if schemas and not codes else ""
            out.append(f"- **{status}** {_cell(what)}{shown}")
        out.append("")
    out += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out += [f"### {name} {{#{name.lower()}}}", ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        rows = _fields(schema)
        out += (rows or [f"Type: {_type(schema)}"]) + [""]
    return "\n".join(out)


# --- error codes -----------------------------------------------------------------------------------


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found += _subclasses(sub)
    return found


def errors_markdown() -> str:
    errors = importlib.import_module("chalicelib.errors")
    http = importlib.import_module("chalicelib.http")
    classes = _subclasses(errors.RewardgateError)  # the base itself is never raised
    problems = ["| code | HTTP status | title (the problem's `title`) | class |", "| --- | --- | --- | --- |"]
    open_live = ["| open-live code | title | class |", "| --- | --- | --- |"]
    for cls in sorted(classes, key=lambda c: (getattr(c, "bili_code", 0), c.code)):
        where = f"`{cls.__module__}.{cls.__name__}`"
        if issubclass(cls, errors.OpenLiveError):
            open_live.append(f"| {cls.bili_code} | {_cell(cls.title())} | {where} |")
            continue
        status = http.status_for(cls.__new__(cls))
        problems.append(f"| `{cls.code}` | {status} | {_cell(cls.title())} | {where} |")
    return "\n".join([*problems, "", "Open-live API (`/v2/app/*`: HTTP 200, the code in Bilibili's envelope):", "",
                      *open_live])


# --- configuration ---------------------------------------------------------------------------------


def read_settings() -> dict[str, dict[str, str]]:
    """{variable: {default, minimum, file}} for every `RG_*` variable the settings modules read."""
    found: dict[str, dict[str, str]] = {}
    for rel in SETTINGS_MODULES:
        path = ROOT / rel
        module = importlib.import_module(rel[:-3].replace("/", "."))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name_at = 1 if isinstance(func, ast.Name) and func.id == "env_int" else (
                0 if isinstance(func, ast.Attribute) and func.attr == "get" else None)
            if name_at is None or len(node.args) <= name_at:
                continue
            name = node.args[name_at]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.startswith("RG_")):
                continue
            default = node.args[name_at + 1] if len(node.args) > name_at + 1 else None
            minimum = next((k.value for k in node.keywords if k.arg == "minimum"), None)
            found[name.value] = {"default": _value(default, module), "minimum": _value(minimum, module), "file": rel}
    return found


def _value(node: ast.expr | None, module: Any) -> str:
    """A default as the code computes it (`64 * 1024` -> 65536, a module constant -> its value), else as written."""
    if node is None:
        return ""
    try:
        return repr(_evaluate(node, module))
    except ValueError:
        return ast.unparse(node)  # depends on a local (f"rewardgate/{stage}"): shown as written


def _evaluate(node: ast.expr, module: Any) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and hasattr(module, node.id):
        return getattr(module, node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Add)):
        left, right = _evaluate(node.left, module), _evaluate(node.right, module)
        return left * right if isinstance(node.op, ast.Mult) else left + right
    raise ValueError(ast.unparse(node))


def read_meanings() -> dict[str, str]:
    """`settings.md.yml`: `RG_NAME: meaning` lines (a meaning may continue on indented lines)."""
    meanings: dict[str, str] = {}
    name = None
    for line in MEANINGS.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and name:
            meanings[name] += " " + line.strip()
            continue
        name, _, text = line.partition(":")
        name = name.strip()
        meanings[name] = text.strip()
    return meanings


def settings_markdown() -> str:
    code, meanings = read_settings(), read_meanings()
    missing = sorted(set(code) - set(meanings))
    gone = sorted(set(meanings) - set(code))
    if missing or gone:
        raise PluginError(f"docs/reference/settings.md.yml disagrees with the code: no meaning for {missing}; "
                          f"meanings of variables the code does not read: {gone}")
    rows = ["| variable | default | minimum | read in | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, facts in sorted(code.items(), key=lambda kv: (kv[1]["file"], kv[0])):
        rows.append(f"| `{name}` | `{_cell(facts['default'])}` | {facts['minimum']} | `{facts['file']}` | "
                    f"{_cell(meanings[name])} |")
    return "\n".join(rows)


# --- the hook --------------------------------------------------------------------------------------

GENERATORS = {
    "route_table": lambda: route_table_markdown(json.loads(OPENAPI.read_text())),
    "operations": lambda: operations_markdown(json.loads(OPENAPI.read_text())),
    "errors": errors_markdown,
    "settings": settings_markdown,
}


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    def generate(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_path}: unknown generated block {name!r}")
        return GENERATORS[name]()

    return MARKER.sub(generate, markdown)
