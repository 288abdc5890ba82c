"""The packaged deploy template, built at most once per test session (the deploy tests share it).

`make test` runs `make iac-check` first, which builds `build/package` through exactly the code these tests
would run (`infra.package.build`) and lints it. When that output is current (`infra.package.is_current`: its
recorded input fingerprint matches the files now) the tests read it; otherwise (a lone `pytest` after an edit)
they build into a session temp directory. `chalice package` vendors Linux wheels for requirements.txt from
PyPI (cached under `.chalice/deployments/` after the first run).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGE = "prod"
MAKE_PACKAGE_DIR = Path(__file__).resolve().parent.parent / "build" / "package"  # the Makefile's PACKAGE_DIR
# Written by `make iac-check` right after the cfn-lint CLI passed: `sha256sum` of the two templates it linted.
CFN_LINT_PASSED = "cfn-lint.passed"


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
    """The prod stage's package: `make package`'s when current, else built once per session."""
    from infra.package import TEMPLATE_NAME, TRANSFORMED_NAME, build, is_current

    if is_current(MAKE_PACKAGE_DIR, STAGE):
        out = MAKE_PACKAGE_DIR
    else:
        root = Path(tempfile.mkdtemp(prefix="rewardgate-package-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)  # the zip is ~25 MB
        out = root / "package"
        build(STAGE, out)
    print(f"package: {out}")
    return Packaged(out, json.loads((out / TEMPLATE_NAME).read_text()),
                    json.loads((out / TRANSFORMED_NAME).read_text()))


def linted_by_make(out: Path, names: tuple[str, ...]) -> bool:
    """Whether `make iac-check`'s cfn-lint passed on exactly these files' current bytes."""
    stamp = out / CFN_LINT_PASSED
    if not stamp.is_file():
        return False
    recorded = {Path(path).name: digest for digest, path in (line.split(maxsplit=1) for line in
                                                            stamp.read_text().splitlines() if line.strip())}
    return all(recorded.get(name) == hashlib.sha256((out / name).read_bytes()).hexdigest() for name in names)
