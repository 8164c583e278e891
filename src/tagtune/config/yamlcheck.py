"""Safety checks on YAML files users hand to tagtune (their presets, main configs, config dirs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError

_USER_YAML_MAX_BYTES = 1 << 20
_USER_YAML_MAX_NODES = 100_000


def check_user_yaml(path: Path) -> None:
    """Refuse a user YAML that is huge or expands into a huge tree (a "billion laughs" of aliases).

    PyYAML keeps aliases as shared nodes; OmegaConf copies them out, so a few lines of nested
    aliases can expand to billions of values. The expanded size is counted on the node graph.
    """
    import yaml

    path = Path(path)
    if path.stat().st_size > _USER_YAML_MAX_BYTES:
        raise ConfigError(f"{path}: config file is larger than {_USER_YAML_MAX_BYTES >> 20} MiB")
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:160]})") from exc
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a cycle counts once
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v) for v in node.value)
        sizes[id(node)] = min(total, _USER_YAML_MAX_NODES + 1)
        return sizes[id(node)]

    if root is not None and size(root) > _USER_YAML_MAX_NODES:
        raise ConfigError(f"{path}: YAML aliases expand to more than {_USER_YAML_MAX_NODES:,} values",
                          hint="remove the nested anchors (&) and aliases (*)")


def check_user_dirs(dirs: Sequence[Path]) -> None:
    for d in dirs:
        for path in sorted(Path(d).rglob("*.y*ml"))[:2000]:
            if path.suffix in (".yaml", ".yml") and path.is_file():
                check_user_yaml(path)
