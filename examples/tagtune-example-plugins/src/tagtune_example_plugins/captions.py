"""``shout``: a caption backend (family ``caption_backends``) that writes the tags joined, in upper case.

``caption infer`` builds it as ``ShoutBackend(settings)`` (a ``tagtune.caption.backends.BackendSettings``),
calls ``load()`` once, then ``generate(rows, seed)`` per batch. Its own setting, the separator, sits
in ``model.options`` (configs/model/caption/shout.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagtune.caption.backends import BackendSettings
from tagtune.errors import ConfigError
from tagtune.records.rows import TagSetRow
from tagtune_example_plugins import __version__


class ShoutBackend:
    """Tag sets in, ``ROCK, PIANO, FAST TEMPO`` out: no model, no randomness."""

    loads_weights = False  # nothing to load: caption infer need not set torch threads for it

    def __init__(self, settings: BackendSettings):
        separator = settings.model.options.get("separator")
        if not isinstance(separator, str):  # checked here, before caption infer reads a single row
            raise ConfigError("model.options.separator: missing: the shout caption backend reads it",
                              key="model.options.separator", hint="start from model=caption/shout")
        self.name, self.separator = settings.model.name, separator

    def load(self) -> list[str]:
        return []  # notices for the user; a model would be loaded here

    def generate(self, rows: Sequence[TagSetRow], seed: int) -> list[str]:
        return [self.separator.join(row.tags).upper() for row in rows]

    def provenance(self) -> dict[str, Any]:
        """Becomes every row's ``provenance.caption``: enough to make the caption again."""
        return {"model": self.name, "revision": f"tagtune-example-plugins:{__version__}",
                "separator": self.separator}
