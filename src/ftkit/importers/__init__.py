"""Recipes from other tools' configs (`ftkit import <tool> CONFIG.yaml`): one module per tool, listed in
IMPORTERS."""

from __future__ import annotations

from ftkit.importers import axolotl, llamafactory

IMPORTERS = {"llamafactory": llamafactory, "axolotl": axolotl}
