"""Per-epoch training records."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """A list of per-epoch records (dicts of floats), readable by column: ``history["loss"]``."""

    epochs: list[dict[str, Any]] = field(default_factory=list)

    def append(self, record: dict[str, Any]) -> None:
        self.epochs.append(record)

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, key: str) -> list[Any]:
        if not self.epochs or key not in self.epochs[-1]:
            raise KeyError(
                f"no column {key!r}; columns: {sorted(self.epochs[-1]) if self.epochs else []}"
            )
        return [e.get(key) for e in self.epochs]

    @property
    def last(self) -> dict[str, Any]:
        return self.epochs[-1] if self.epochs else {}

    def to_list(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.epochs]
