"""The base every recipe section derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A recipe section: unknown keys are errors, and values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class ConfigConflict(ValueError):
    """A cross-field problem. `paths` are dotted keys to point at (file:line), the first one set wins."""

    def __init__(self, paths: str | tuple[str, ...], message: str) -> None:
        self.paths = (paths,) if isinstance(paths, str) else paths
        super().__init__(message)
