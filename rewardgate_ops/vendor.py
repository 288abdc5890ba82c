"""`python -m rewardgate_ops.vendor`: put the API reference page's Redoc bundle where the app serves it from.

The page (`GET /docs`, chalicelib/routes/docs.py) loads Redoc's standalone bundle from the app itself, never
from a CDN. The bundle comes from the npm registry (package `redoc`, pinned here) with `npm pack` (the
tarball alone, no dependency tree) and is written to `chalicelib/vendor/` (git-ignored), so that `make
package` ships it in the Lambda package too. `make deps` runs this; so do the tests that need it.

The bundle's one outside reference, its "API docs by Redocly" logo on Redocly's CDN, is replaced by an empty
`data:` image when vendored, so that the page fetches nothing from elsewhere (its Content-Security-Policy
would block it anyway).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from rewardgate_ops.errors import OpsError

REDOC_PACKAGE = "redoc@2.5.4"
BUNDLE = "package/bundles/redoc.standalone.js"
ROOT = Path(__file__).resolve().parent.parent
VENDOR_DIR = ROOT / "chalicelib" / "vendor"
REDOC_JS = VENDOR_DIR / "redoc.standalone.js"
OUTSIDE = {b"https://cdn.redoc.ly/redoc/logo-mini.svg": b"data:,"}


class VendorError(OpsError, RuntimeError):
    """The bundle could not be fetched."""


def ensure_redoc(target: Path = REDOC_JS) -> Path:
    """The Redoc bundle's path, fetched from the npm registry first if missing."""
    if target.exists() and target.stat().st_size > 0:
        return target
    if shutil.which("npm") is None:
        raise VendorError("npm is needed to fetch the API reference bundle (package redoc); install Node.js")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(  # noqa: S603
            ["npm", "pack", "--silent", "--pack-destination", tmp, REDOC_PACKAGE],  # noqa: S607
            capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise VendorError(f"npm pack {REDOC_PACKAGE} failed: {done.stderr.strip()[-500:]}")
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(BUNDLE)
            if member is None:
                raise VendorError(f"{REDOC_PACKAGE} has no {BUNDLE}")
            data = member.read()
    for outside, local in OUTSIDE.items():
        if outside not in data:
            raise VendorError(f"{REDOC_PACKAGE} no longer references {outside.decode()}: review OUTSIDE")
        data = data.replace(outside, local)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def main() -> int:
    """Fetch the bundle if missing and say where it is."""
    try:
        path = ensure_redoc()
    except VendorError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"API reference bundle ({REDOC_PACKAGE}): {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
