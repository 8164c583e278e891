"""Safety checks on YAML files users hand to tagtune (their presets, main configs, config dirs)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError

_USER_YAML_MAX_BYTES = 1 << 20
_USER_YAML_MAX_NODES = 100_000


_MAX_DEPTH = 100  # a config is a few levels deep; thousands of levels is an attack or a mistake
_ENV = re.compile(r"\$\{oc\.env:([^,}\s]+)\}")  # an environment variable without a default


def check_user_yaml(path: Path) -> None:
    """Refuse, naming the file (and line), a user YAML tagtune cannot take as a config.

    Huge files and files whose aliases expand into a huge tree (a "billion laughs": PyYAML keeps
    aliases as shared nodes, OmegaConf copies them out, so the expanded size is counted on the node
    graph), nesting deeper than any config needs, a key given twice in one mapping, and an
    environment variable used without a default that is not set.
    """
    import yaml

    path = Path(path)
    if path.stat().st_size > _USER_YAML_MAX_BYTES:
        raise ConfigError(f"{path}: config file is larger than {_USER_YAML_MAX_BYTES >> 20} MiB")
    try:
        text = path.read_text(encoding="utf-8-sig")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested more than {_MAX_DEPTH} levels deep", hint="a config is a few levels deep") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:160]})") from exc
    if root is not None:
        _walk(root, path)
    for number, line in enumerate(text.splitlines(), start=1):
        for name in _ENV.findall(line):
            if name not in os.environ:
                raise ConfigError(f"{path}:{number}: environment variable {name} is not set",
                                  hint=f"set it, or give a default: ${{oc.env:{name},DEFAULT}}")


def _walk(root: Any, path: Path) -> None:
    """Depth, duplicate keys and expanded size of a YAML node graph, without recursion."""
    import yaml

    sizes: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if done:
            children = [n for kv in node.value for n in kv] if isinstance(node, yaml.MappingNode) else node.value
            sizes[id(node)] = min(1 + sum(sizes.get(id(c), 1) for c in children), _USER_YAML_MAX_NODES + 1)
            continue
        if id(node) in sizes:
            continue
        sizes[id(node)] = 1  # a cycle counts once
        if depth > _MAX_DEPTH:
            raise ConfigError(f"{path}:{node.start_mark.line + 1}: nested more than {_MAX_DEPTH} levels deep",
                              hint="a config is a few levels deep")
        if isinstance(node, yaml.MappingNode):
            keys: dict[Any, int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in keys:
                    raise ConfigError(f"{path}:{key.start_mark.line + 1}: key '{key.value}' is given twice "
                                      f"(first on line {keys[key.value]})", hint="keep one of them")
                if isinstance(key, yaml.ScalarNode):
                    keys[key.value] = key.start_mark.line + 1
            children = [n for kv in node.value for n in kv]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            continue
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children)
    if sizes.get(id(root), 1) > _USER_YAML_MAX_NODES:
        raise ConfigError(f"{path}: YAML aliases expand to more than {_USER_YAML_MAX_NODES:,} values",
                          hint="remove the nested anchors (&) and aliases (*)")


def check_user_dirs(dirs: Sequence[Path]) -> None:
    for d in dirs:
        for path in sorted(Path(d).rglob("*.y*ml"))[:2000]:
            if path.suffix in (".yaml", ".yml") and path.is_file():
                check_user_yaml(path)
