"""`grpo:` group relative policy optimization (stage grpo)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from ftkit.config.sections.base import Section


class RewardRef(Section):
    """A reward: a built-in (`name: exact_match`), a function by import path (`name: my_pkg.rewards:score`),
    or a sequence-classification reward model (`model: path/or/hub-id`)."""

    name: str | None = Field(None, min_length=1)
    """Built-in reward name or `package.module:function`."""
    model: str | None = Field(None, min_length=1)
    """Path or hub id of a reward model (sequence classification with one output)."""
    weight: float = 1.0
    """Weight of this reward in the total reward."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Options of a built-in reward, e.g. {pattern: "^<think>"} for format_match."""

    @model_validator(mode="after")
    def _one_source(self) -> RewardRef:
        if (self.name is None) == (self.model is None):
            raise ValueError("a reward has either a name (built-in or module:function) or a model, not both")
        if self.model is not None and self.params:
            raise ValueError("params apply to built-in rewards, not to a reward model")
        return self


class GrpoConfig(Section):
    """Sampling and loss settings for GRPO (TRL's GRPOTrainer)."""

    reward_funcs: list[RewardRef] = Field(default_factory=list)
    """Rewards scored on every completion: names, or {name, weight}."""
    num_generations: int = Field(8, ge=2)
    """Completions sampled per prompt; the advantage compares completions within this group."""
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
