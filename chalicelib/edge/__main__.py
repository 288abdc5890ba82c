"""`python -m chalicelib.edge [--check]`: write docs/openapi.json and docs/asyncapi.json (`make openapi`).

The HTTP route table and every operation's reference are rendered from openapi.json when the docs site is
built (`docs/hooks.py`), so nothing else is generated here. With `--check`, write nothing and exit 1 when
either file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "openapi.json"
ASYNC_DOC = ROOT / "docs" / "asyncapi.json"


def _text(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def rendered() -> dict[Path, str]:
    """Each generated file and its current text: the HTTP API's OpenAPI and the live push's AsyncAPI document."""
    import app
    from chalicelib.edge import asyncapi
    from chalicelib.edge.openapi import build

    return {DOC: _text(build(app.app)), ASYNC_DOC: _text(asyncapi.build())}


def main(argv: list[str]) -> int:
    """Write (or check) the documents."""
    files = rendered()
    if "--check" in argv:
        stale = [str(path.relative_to(ROOT)) for path, text in files.items()
                 if not path.exists() or path.read_text() != text]
        if stale:
            print(f"stale (run `make openapi`): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    for path, text in files.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    print(f"wrote {', '.join(str(p.relative_to(ROOT)) for p in files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
