"""`grpo:` group relative policy optimization (stage grpo)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ftkit.config.sections.base import Section


class RewardRef(Section):
    """A reward function: a built-in name (`ftkit rewards`) or an import path `package.module:function`."""

    name: str = Field(min_length=1)
    """Built-in reward name or `package.module:function`."""
    weight: float = 1.0
    """Weight of this reward in the total reward."""


class GrpoConfig(Section):
    """Sampling and loss settings for GRPO (TRL's GRPOTrainer)."""

    reward_funcs: list[RewardRef] = Field(default_factory=list)
    """Rewards scored on every completion: names, or {name, weight}."""
    num_generations: int = Field(8, ge=2)
    """Completions sampled per prompt; the advantage compares completions within this group."""
    max_prompt_length: int | None = Field(None, ge=1)
    """Prompts longer than this are truncated from the left."""
    max_completion_length: int = Field(256, ge=1)
    """Maximum tokens sampled per completion."""
    beta: float = Field(0.04, ge=0)
    """KL penalty against the reference model; 0 skips loading the reference model."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature of the completions."""

    @field_validator("reward_funcs", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value
