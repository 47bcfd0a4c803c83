"""Scores of generated answers against references: per answer (shared with the GRPO rewards, so that a
metric and a reward of the same name score an answer the same way) and over the eval examples. The metric
table that names them is metrics.py."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


_FRACTION = re.compile(r"^(-?)\\d?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}$")
_REASONING_END = "</think>"


def final_answer(text: str) -> str:
    """The answer part of a completion: what follows the reasoning block of a reasoning model, if any."""
    return text.rsplit(_REASONING_END, 1)[-1]


def _last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (braces inside it balanced), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for index in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth < 0:
            return text[begin:index]
    return None


def _as_number(text: str) -> float | None:
    cleaned = text.strip().strip("$").replace(",", "").replace(" ", "").removeprefix("\\!")
    fraction = _FRACTION.match(cleaned)
    try:
        if fraction:
            value = float(fraction.group(2)) / float(fraction.group(3))
            return -value if fraction.group(1) else value
        return float(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def final_number(text: str) -> float | None:
    """The answer a math solution states: after `####`, else inside the last `\\boxed{}` (a number or a
    \\frac; anything else there is no number), else the last number of the answer part."""
    text = final_answer(text)
    found = re.findall(r"####\s*(-?[\d,]*\.?\d+)", text)
    if found:
        return float(found[-1].replace(",", ""))
    boxed = _last_boxed(text)
    if boxed is not None:
        return _as_number(boxed)
    numbers = _NUMBER.findall(text)
    return float(numbers[-1].replace(",", "")) if numbers else None


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's exact-match normalization)."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


# ------------------------------------------------------------------ one answer against its reference


def exact_match_score(prediction: str, reference: str) -> float:
    """1 when the answer (after any `</think>`) equals the reference after SQuAD normalization."""
    return float(normalize_answer(final_answer(prediction)) == normalize_answer(reference))


def numeric_match_score(prediction: str, reference: str) -> float | None:
    """1 when the answer's final number equals the reference's; None when the reference has none."""
    expected = final_number(reference)
    if expected is None:
        return None
    got = final_number(prediction)
    return float(got is not None and abs(got - expected) < 1e-6)


def label_match_score(prediction: str, reference: str) -> float:
    """Generative classification: 1 when the answer's first word is the reference label."""
    words = re.findall(r"[\w-]+", final_answer(prediction).lower())
    return float(bool(words) and words[0] == reference.strip().lower())


def mean_score(scores: Sequence[float | None]) -> float:
    counted = [score for score in scores if score is not None]
    return sum(counted) / len(counted) if counted else 0.0


# ------------------------------------------------------------------ over the eval examples


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    return mean_score([exact_match_score(p, r) for p, r in zip(predictions, references, strict=True)])


def predicted_label(prediction: str, labels: Sequence[str]) -> str | None:
    """The label the prediction names first (whole words, case-insensitive), or None."""
    found = []
    prediction = final_answer(prediction)
    for label in labels:
        match = re.search(rf"(?<![\w-]){re.escape(label.lower())}(?![\w-])", prediction.lower())
        if match:
            found.append((match.start(), -len(label), label))
    return min(found)[2] if found else None


def accuracy(
    predictions: Sequence[str], references: Sequence[str], labels: Sequence[str] | None = None
) -> float:
    """Generative classification: the label a prediction names first equals the reference label."""
    labels = list(labels or sorted(set(references)))
    pairs = list(zip(predictions, references, strict=True))
    hits = sum(
        predicted_label(p, labels) is not None and predicted_label(p, labels).lower() == r.lower()
        for p, r in pairs
    )
    return hits / len(pairs) if pairs else 0.0


def numeric_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Math: the prediction's final number equals the reference's (references without one are left out)."""
    return mean_score([numeric_match_score(p, r) for p, r in zip(predictions, references, strict=True)])


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _f1(overlap: int, predicted: int, reference: int) -> float:
    if overlap == 0 or predicted == 0 or reference == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / reference
    return 2 * precision * recall / (precision + recall)


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def rouge_n(prediction: str, reference: str, n: int) -> float:
    predicted, referenced = _ngrams(_words(prediction), n), _ngrams(_words(reference), n)
    return _f1(sum((predicted & referenced).values()), sum(predicted.values()), sum(referenced.values()))


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    predicted, referenced = _words(prediction), _words(reference)
    return _f1(_lcs(predicted, referenced), len(predicted), len(referenced))


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 over lower-cased words, averaged over the examples."""
    pairs = list(zip(predictions, references, strict=True))
    if not pairs:
        return {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    return {
        "rouge1": sum(rouge_n(p, r, 1) for p, r in pairs) / len(pairs),
        "rouge2": sum(rouge_n(p, r, 2) for p, r in pairs) / len(pairs),
        "rougeL": sum(rouge_l(p, r) for p, r in pairs) / len(pairs),
    }
