"""CloudFormation logical ids, shared by the template and the modules that feed it (alarms, IAM)."""

from __future__ import annotations

import re


def logical_id(name: str, suffix: str) -> str:
    """CloudFormation logical id for a resource: `app-state` + `Table` -> `AppStateTable`."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", name) if part) + suffix
