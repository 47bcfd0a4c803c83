"""A user reward, imported by path (`tests.user_rewards:brevity`) in the GRPO tests."""

from __future__ import annotations


def brevity(completions: list[str], reference: list[str | None], scale: int, **kwargs: object) -> list[float]:
    """Shorter completions score higher; fails loudly if the dataset's reference column is not passed."""
    assert len(reference) == len(completions) and all(isinstance(r, str) for r in reference)
    return [-min(len(completion) / scale, 1.0) for completion in completions]
