"""Sizes as users write them (5GB, 500MB, 2GiB): the one grammar for shard sizes, in recipes and flags."""

from __future__ import annotations

import re

from ftkit.errors import UserError

SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


class BadSize(UserError, ValueError):
    """Not a size; a user error on the command line, a validation error in a recipe."""


def parse_size(text: str) -> int:
    """Bytes in `text`, e.g. 5GB (decimal units) or 2GiB (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*", text)
    if not match or match.group(2).upper() not in SIZE_UNITS:
        raise BadSize(f"{text!r} is not a size such as 5GB, 500MB or 2GiB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])
