"""The explicit tables behind ftkit's extension points (stages, dataset formats, eval metrics): a name
maps to a declaration, a taken name is refused, and a lookup of an unknown name suggests the closest."""

from __future__ import annotations

import difflib
from typing import Generic, TypeVar

from ftkit.errors import UserError

T = TypeVar("T")


class Table(dict[str, T], Generic[T]):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        """What the entries are, for messages: "stage", "dataset format", ..."""

    def register(self, item: T) -> T:
        """Add `item` under its `name`; a name that is taken is a programming error."""
        name = item.name  # type: ignore[attr-defined]
        if name in self:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self[name] = item
        return item

    def suggestion(self, name: str) -> str:
        """` (did you mean x?)` for the closest name, or nothing."""
        close = difflib.get_close_matches(name, self, n=1)
        return f" (did you mean {close[0]}?)" if close else ""

    def lookup(self, name: str) -> T:
        """The entry called `name`; an unknown name is a user error listing the choices."""
        if name not in self:
            raise UserError(
                f"unknown {self.what} {name!r}{self.suggestion(name)}; {self.what}s: {', '.join(self)}"
            )
        return self[name]
