"""A play reconciliation finding: the shape every play check reports (settlement, events, bills)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PlayFinding:
    """One discrepancy."""

    kind: str
    id: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "id": self.id, **self.details}
