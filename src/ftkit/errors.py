"""Errors ftkit reports to users.

A `UserError` is a problem the user can fix (bad recipe, data, path or option): the CLI prints its
message without a traceback and exits with code 2. Anything else is a bug and exits with code 1.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in what the user asked for; the message says what is wrong and how to fix it."""

    exit_code = 2


class RecipeError(UserError):
    """The recipe (YAML, overrides or registry entry it names) is invalid."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        header = f"invalid recipe {source}" if source else "invalid recipe"
        if len(problems) == 1:
            message = f"{header}: {problems[0]}"
        else:
            message = header + f" ({len(problems)} problems):\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(message)


class Interrupted(Exception):
    """The user stopped the command (Ctrl-C); the message says what was kept and how to continue."""

    exit_code = 130


def listing(items: list[str], last: str = "and") -> str:
    """`a, b and c` (or `a, b or c`) for messages."""
    return f"{', '.join(items[:-1])} {last} {items[-1]}" if len(items) > 1 else "".join(items)
