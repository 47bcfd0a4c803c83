"""What a training stream has read, dropped and produced, and what its trainer consumed (data/stream.py
counts, stages/streaming.py saves them with each checkpoint and adds up the processes' counts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StreamCounts:
    """What one process's stream has read, dropped and produced so far, and what its trainer consumed."""

    read: dict[str, int] = field(default_factory=dict)
    """Rows read, per dataset."""
    filtered: dict[str, dict[str, int]] = field(default_factory=dict)
    """Rows the entry removes on purpose (where, length), per dataset and reason."""
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    """Bad rows and examples skipped with on_bad_rows: skip, per dataset and reason."""
    examples: dict[str, int] = field(default_factory=dict)
    """Examples tokenized, per dataset: the realized mixture."""
    truncated: int = 0
    trained: dict[str, int] = field(
        default_factory=lambda: {"sequences": 0, "tokens": 0, "trained_tokens": 0}
    )
    """Sequences (examples, blocks or packed rows), tokens and tokens with a loss in the batches trained."""

    def __deepcopy__(self, memo: dict) -> StreamCounts:
        # datasets copies the pipeline (and the functions' arguments) for every pass over a stream: all
        # copies must count into this one tally.
        return self

    def add(self, section: str, dataset: str, reason: str | None = None, count: int = 1) -> None:
        table = getattr(self, section)
        if reason is None:
            table[dataset] = table.get(dataset, 0) + count
        else:
            reasons = table.setdefault(dataset, {})
            reasons[reason] = reasons.get(reason, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load(self, saved: dict[str, Any]) -> None:
        """Continue from the counts a checkpoint saved."""
        for name, value in saved.items():
            setattr(self, name, value)

    @classmethod
    def total(cls, parts: list[dict[str, Any]]) -> StreamCounts:
        """The counts of all processes added up."""
        summed = cls()
        for part in parts:
            for name in ("read", "examples", "trained"):
                for key, value in part[name].items():
                    getattr(summed, name)[key] = getattr(summed, name).get(key, 0) + value
            for name in ("filtered", "skipped"):
                for dataset, reasons in part[name].items():
                    for reason, value in reasons.items():
                        summed.add(name, dataset, reason, value)
            summed.truncated += part["truncated"]
        return summed
