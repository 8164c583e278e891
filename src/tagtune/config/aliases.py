"""Other names for config keys and groups (``resources/aliases.yaml``): the reference's and older tagtune's.

Users copy keys from the reference system's configuration document (``inference.num_samples``,
``data.aspect_column``, the ``evaluation/`` group); they are rewritten to the one key tagtune reads
before composition (overrides) and after it (keys a preset or main config of yours sets), and each
rewrite is reported once, so ``--show-config`` can say where a value landed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from tagtune.files.readers import resources_dir


@functools.cache
def table() -> dict[str, Any]:
    """``{"keys": {stage or "*": {alias: key}}, "groups": {alias: group}}``."""
    import yaml

    return yaml.safe_load((resources_dir() / "aliases.yaml").read_text(encoding="utf-8"))


def key_aliases(stage: str) -> dict[str, str]:
    """The key aliases that apply to a stage's main configs (its own, then the general ones)."""
    keys = table().get("keys") or {}
    return {**(keys.get("*") or {}), **(keys.get(stage) or {})}


def _rename(key: str, names: dict[str, str]) -> str | None:
    for alias, target in names.items():
        if key == alias or key.startswith(alias + "."):
            return target + key[len(alias):]
    return None


def rewrite(stage: str, overrides: Sequence[str], notes: list[str]) -> list[str]:
    """Overrides with alias keys and groups replaced by tagtune's (one note per rewrite)."""
    out = []
    names, groups = key_aliases(stage), table().get("groups") or {}
    for item in overrides:
        prefix = item[: len(item) - len(item.lstrip("+~"))]
        key, eq, value = item[len(prefix):].partition("=")
        target = groups.get(key) if eq and "." not in key else None
        if target is not None:
            notes.append(f"{key}={value}: the group is {target}/ now ({target}={value})")
            out.append(f"{prefix}{target}={value}")
            continue
        renamed = _rename(key.strip(), names)
        if renamed is None:
            out.append(item)
            continue
        notes.append(f"{key}: tagtune's name for it is {renamed} (set there)")
        out.append(f"{prefix.replace('+', '')}{renamed}{eq}{value}")  # the key exists: no "+" to add it
    return out


def move(stage: str, data: dict[str, Any], notes: list[str]) -> None:
    """Move values a preset or main config set under an alias key to tagtune's key, in place."""
    for alias, target in key_aliases(stage).items():
        *head, last = alias.split(".")
        node: Any = data
        for part in head:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            continue
        value = node.pop(last)
        if head and isinstance(node, dict) and not node:
            parent: Any = data
            for part in head[:-1]:
                parent = parent[part]
            parent.pop(head[-1])
        *thead, tlast = target.split(".")
        dest: Any = data
        for part in thead:
            dest = dest.setdefault(part, {})
        dest[tlast] = value
        notes.append(f"{alias}: tagtune's name for it is {target} (set there)")
