"""`logging:`, `eval:` and `export:` what happens around and after training."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ftkit.config.sections.base import Section
from ftkit.config.sections.model import Dtype
from ftkit.metrics import check_metric
from ftkit.sizes import parse_size


class LoggingConfig(Section):
    """Experiment tracking. Credentials come from the environment (e.g. WANDB_API_KEY), never from the recipe."""

    report_to: list[Literal["none", "wandb", "tensorboard", "mlflow"]] = Field(default_factory=list)
    """Trackers that receive metrics and run metadata."""
    project: str | None = None
    """Tracker project (wandb project; tensorboard sub-folder; MLflow experiment)."""
    mlflow_tracking_uri: str | None = None
    """MLflow: where runs are stored, a tracking server (http://host:5000) or a database URI. Default: the
    local store sqlite:///mlflow.db in the working directory (`mlflow ui --backend-store-uri
    sqlite:///mlflow.db` there shows it), resolved to its absolute path."""
    run_name: str | None = None
    """Name of the run in the tracker; defaults to the output_dir's name."""
    tags: list[str] = Field(default_factory=list)
    """Tracker tags of the run."""

    @field_validator("report_to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class EvalConfig(Section):
    """`ftkit eval`: metrics computed on the eval datasets."""

    metrics: list[str] = Field(default_factory=lambda: ["loss", "perplexity"])
    """Metrics to compute, from the metric table (below): loss and perplexity on the eval answers, the
    others from generated answers."""
    max_samples: int | None = Field(None, ge=1)
    """Evaluate on at most this many examples."""
    max_new_tokens: int = Field(128, ge=1)
    """Generation length for the metrics computed from generations."""
    batch_size: int = Field(8, ge=1)
    """Examples per generation batch."""

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for name in value:
            check_metric(name)
        return value


class ExportConfig(Section):
    """`ftkit export`: merge the trained adapter into its base model."""

    adapter_dir: str | None = None
    """Adapter to merge; defaults to train.output_dir."""
    output_dir: str | None = None
    """Where the merged model is written; defaults to <train.output_dir>/merged."""
    dtype: Dtype = "auto"
    """Dtype of the merged weights; auto keeps the base checkpoint's dtype."""
    shard_size: str = "5GB"
    """Maximum size of each safetensors shard, e.g. 2GB or 500MB."""

    @field_validator("shard_size")
    @classmethod
    def _size(cls, value: str) -> str:
        parse_size(value)
        return value.strip()
