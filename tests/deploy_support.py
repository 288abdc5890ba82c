"""The packaged deploy template, built once per test session (the deploy tests share it).

`chalice package` vendors Linux wheels for requirements.txt from PyPI (cached under
`.chalice/deployments/` after the first run), so the build runs once per process, into a session
temp directory, through exactly the code `make package` runs.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGE = "prod"


@dataclass(frozen=True)
class Packaged:
    """What `python -m infra.package build` produced."""

    out: Path
    sam: dict[str, Any]  # build/package/sam.json: Chalice's SAM template with the merge applied
    expanded: dict[str, Any]  # transformed.json: the same after the SAM transform (plain CloudFormation)

    def of_type(self, kind: str, expanded: bool = False) -> dict[str, dict[str, Any]]:
        """Resources of one type, by logical id."""
        template = self.expanded if expanded else self.sam
        return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


@functools.cache
def packaged() -> Packaged:
    """Package the prod stage once per session."""
    from infra.package import TEMPLATE_NAME, TRANSFORMED_NAME, build

    root = Path(tempfile.mkdtemp(prefix="rewardgate-package-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # the zip is ~25 MB
    out = root / "package"
    build(STAGE, out)
    return Packaged(out, json.loads((out / TEMPLATE_NAME).read_text()),
                    json.loads((out / TRANSFORMED_NAME).read_text()))
