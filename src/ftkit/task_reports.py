"""Reports of generated answers for a task, beyond one number: classification (accuracy, macro-F1,
per-label precision and recall, the confusion matrix, answers naming no label) and code generation
(how many answers hold code, how many of those parse as Python), each broken down by the eval
examples' group (e.g. a problem's difficulty) when the registry entry names a group_column.
These are the `classification` and `code` metrics of the metric table (metrics.py)."""

from __future__ import annotations

import ast
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from ftkit.answer_scores import predicted_label

UNMATCHED = "(no label)"
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^\s*(def |class |import |from \w+ import |for |while |if |print\(|\w+\s*=)", re.M)


def classification_report(
    predictions: Sequence[str], references: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1 over the labels, per-label precision/recall/F1/support, the confusion matrix
    (rows: reference, columns: predicted, plus a column for answers that name no label) and the count of
    such unmatched answers. Labels are matched case-insensitively as whole words (first named wins)."""
    labels = list(labels or sorted(set(references)))
    canonical = {label.lower(): label for label in labels}
    predicted = []
    for prediction in predictions:
        found = predicted_label(prediction, labels)
        predicted.append(canonical[found.lower()] if found else UNMATCHED)
    truth = [canonical.get(reference.strip().lower(), reference.strip()) for reference in references]
    columns = [*labels, UNMATCHED]
    counts = Counter(zip(truth, predicted, strict=True))
    per_label = {}
    for label in labels:
        hits = counts[(label, label)]
        said = sum(counts[(other, label)] for other in set(truth))
        support = sum(1 for reference in truth if reference == label)
        precision = hits / said if said else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    scored = [label for label in labels if per_label[label]["support"]] or labels
    total = len(truth)
    return {
        "accuracy": sum(counts[(label, label)] for label in labels) / total if total else 0.0,
        "macro_f1": sum(per_label[label]["f1"] for label in scored) / len(scored) if scored else 0.0,
        "unmatched": float(predicted.count(UNMATCHED)),
        "per_label": per_label,
        "confusion_matrix": {
            "labels": labels,
            "predicted": columns,
            "rows": [[counts[(label, column)] for column in columns] for label in labels],
        },
    }


def extract_code(answer: str) -> str | None:
    """The answer's Python: its first fenced block (```python or unlabeled), else the answer itself when it
    starts like code; None when it holds none."""
    for language, body in _FENCE.findall(answer):
        if language.lower() in ("", "python", "py", "python3") and body.strip():
            return body
    if _CODE_START.match(answer):
        return answer
    return None


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def code_report(answers: Sequence[str], groups: Sequence[str | None]) -> dict[str, Any]:
    """generation_rate: answers that hold code; parse_rate: answers whose code parses as Python (of all
    answers); both per group too (e.g. per difficulty)."""

    def rates(indices: list[int]) -> dict[str, float]:
        codes = [extract_code(answers[i]) for i in indices]
        count = len(indices) or 1
        return {
            "generation_rate": sum(code is not None for code in codes) / count,
            "parse_rate": sum(code is not None and parses(code) for code in codes) / count,
            "examples": float(len(indices)),
        }

    by_group: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        if group is not None:
            by_group[str(group)].append(index)
    report: dict[str, Any] = rates(list(range(len(answers))))
    del report["examples"]
    if by_group:
        report["by_group"] = {group: rates(indices) for group, indices in sorted(by_group.items())}
    return report


def render_report(name: str, report: dict[str, Any]) -> list[str]:
    """The structured parts of a report (per label, confusion matrix, per group) as text lines."""
    lines: list[str] = []
    if "per_label" in report:
        lines.append(f"{name}: {'label':<20} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
        for label, row in report["per_label"].items():
            lines.append(
                f"{'':<{len(name) + 2}}{label:<20} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                f"{row['f1']:>6.3f} {row['support']:>8}"
            )
    if "confusion_matrix" in report:
        matrix = report["confusion_matrix"]
        width = max(8, *(len(column) for column in matrix["predicted"]))
        lines.append(f"{name}: confusion matrix (rows: reference, columns: predicted)")
        lines.append(" " * 20 + "".join(f"{column:>{width + 1}}" for column in matrix["predicted"]))
        for label, row in zip(matrix["labels"], matrix["rows"], strict=True):
            lines.append(f"{label:<20}" + "".join(f"{count:>{width + 1}}" for count in row))
    if "by_group" in report:
        lines.append(f"{name}: {'group':<20} {'examples':>8} {'generated':>9} {'parsed':>7}")
        for group, row in report["by_group"].items():
            lines.append(
                f"{'':<{len(name) + 2}}{group:<20} {int(row['examples']):>8} {row['generation_rate']:>9.3f} "
                f"{row['parse_rate']:>7.3f}"
            )
    return lines
