"""`dpo:` direct preference optimization (stage dpo)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ftkit.config.sections.base import Section

LOSSES = Literal[
    "sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down"
]


class DpoConfig(Section):
    """Loss settings for DPO (TRL's DPOTrainer). The reference model is the base model: with LoRA, the
    adapter switched off (no second copy in memory); otherwise a frozen copy of the starting weights."""

    beta: float = Field(0.1, gt=0)
    """Strength of the implicit KL constraint: higher stays closer to the reference model."""
    loss_type: LOSSES = "sigmoid"
    """sigmoid is the DPO paper's loss; the others are its published variants (see TRL's DPOConfig)."""
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """Assumed share of flipped preference labels (conservative DPO, robust)."""
