"""One object carrying the report rules' settings, built once from the rule's params."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReportSettings:
    """The config's `report` block as the tables, claims and figures read it (no defaults
    here: the schema's `$defs/report` owns them), and the arms in the order tables list them.
    `html` is the workflow's business (whether to write report.html), not the tables'."""

    baseline: str
    smallest_effect: float  # Dice: the smallest gain worth calling one
    bootstrap_samples: int
    confidence: float  # of every interval; one minus it is the family-wise alpha
    seed: int  # the bootstrap's
    dpi: int
    qualitative_subjects: int
    strategies: tuple[str, ...]  # the arms, in the config's order

    @classmethod
    def from_config(cls, block: Mapping[str, Any], strategies: Iterable[str]) -> "ReportSettings":
        """From a schema-filled `report` block (the rule's params) and the study's arms."""
        names = [f for f in cls.__dataclass_fields__ if f != "strategies"]
        return cls(**{name: block[name] for name in names}, strategies=tuple(strategies))

    @property
    def bootstrap(self) -> dict[str, Any]:
        """The keyword arguments of every bootstrap: samples, confidence, seed."""
        return {"samples": self.bootstrap_samples, "confidence": self.confidence,
                "seed": self.seed}
