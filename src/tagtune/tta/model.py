"""Moved to :mod:`tagtune.tta.backends` (one module per audio backend).

Kept only so that ``tests/core/test_core_conceptcaps_recipe.py`` still imports
``steps_for_duration`` from here; delete this file once that import reads
``from tagtune.tta.backends.base import steps_for_duration``.
"""

from tagtune.tta.backends.base import steps_for_duration

__all__ = ["steps_for_duration"]
