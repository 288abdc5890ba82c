"""`python -m chalicelib.edge [--check]`: write docs/openapi.json (`make openapi`).

The route table and every operation's reference are rendered from that file when the docs site is built
(`docs/hooks.py`), so nothing else is generated here. With `--check`, write nothing and exit 1 when the
file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "openapi.json"


def rendered() -> str:
    """The current document of the app, as `docs/openapi.json` holds it."""
    import app
    from chalicelib.edge.openapi import build

    return json.dumps(build(app.app), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Write (or check) the document."""
    text = rendered()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"stale (run `make openapi`): {DOC.relative_to(ROOT)}", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)} ({len(json.loads(text)['paths'])} paths)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
