"""Typed configs: one dataclass per command, built from the composed YAML with every value checked.

A command's config class (``GenerateConfig``, ``InferConfig`` ...) declares the sections and keys
the command reads, and nothing else; its annotations are the schema:

* ``int``, ``float``, ``bool``, ``str``: values of CLI flags arrive as text and are converted
  (``"5"`` -> 5); a bool is never an int; floats must be finite;
* ``Annotated[int, Range(min=1)]``: bounds (``above`` is an exclusive lower bound);
* ``Literal["a", "b"]``: one of the choices (a near miss gets "did you mean");
* ``X | None``: null allowed; a field with a default may also be absent from the YAML;
* ``list[X]``, ``dict[str, X]``, nested dataclasses (sections), ``Any`` (not checked);
* a section class with an ``extra_keys`` class attribute (a checker ``(key, value) -> value``)
  keeps the keys it does not declare in its ``extra`` field (the Lightning ``trainer`` section
  passes them to ``lightning.Trainer``); without one, an undeclared key is refused.

Defaults live in the YAML files only; a class never repeats them. Why plain dataclasses and our
own checker rather than OmegaConf structured configs or pydantic: OmegaConf has no ranges or
``Literal`` choices and hands out ``DictConfig`` proxies instead of the declared types; pydantic
would add a dependency whose error messages we would rewrite into ours anyway. The result is a
real, fully typed object whose errors name the dotted key: ``generation.batch_size: expected an
integer >= 1, got 0``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Annotated, Any, Literal, Union

from tagtune.errors import ConfigError

SEED_MAX = 2**32 - 1  # what every RNG takes (torch, numpy, random)


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``min``/``max`` inclusive, ``above`` exclusive."""

    min: float | None = None
    max: float | None = None
    above: float | None = None


class Bad(Exception):
    """A value that does not fit its type (the message says what was expected)."""


Seed = Annotated[int, Range(min=0, max=SEED_MAX)]
Count = Annotated[int, Range(min=1)]


def _bound(what: str, r: Range | None) -> str:
    if r is None:
        return what
    if r.above is not None:
        return f"{what} > {r.above:g}" + (f" and <= {r.max:g}" if r.max is not None else "")
    if r.min is not None and r.max is not None:
        return f"{what} in [{r.min:g}, {r.max:g}]" if r.max < 1e6 else f"{what} >= {r.min:g}, below 2^{int(r.max).bit_length()}"
    if r.min is not None:
        return f"{what} >= {r.min:g}"
    if r.max is not None:
        return f"{what} <= {r.max:g}"
    return what


def _split(tp: Any) -> tuple[Any, Range | None, bool]:
    """(bare type, range, null allowed) of an annotation."""
    rng = None
    if typing.get_origin(tp) is Annotated:
        tp, *meta = typing.get_args(tp)
        rng = next((m for m in meta if isinstance(m, Range)), None)
    nullable = False
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
        if typing.get_origin(tp) is Annotated:
            inner, rng2, _ = _split(tp)
            tp, rng = inner, rng or rng2
    return tp, rng, nullable


def what(tp: Any) -> str:
    """What a value of this annotation must be, in words (errors and docs)."""
    bare, rng, nullable = _split(tp)
    text = _what_bare(bare, rng)
    return text + (" or null" if nullable else "")


def _what_bare(tp: Any, rng: Range | None) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return _bound("an integer", rng)
    if tp is float:
        return _bound("a number", rng)
    if tp is str:
        return "text"
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (list, Sequence, tuple):
        return f"a list of {what(typing.get_args(tp)[0])}" if typing.get_args(tp) else "a list"
    if origin in (dict, Mapping) or is_dataclass(tp):
        return "a mapping"
    return "a value"


def _convert_scalar(tp: Any, rng: Range | None, value: Any) -> Any:
    expected = _what_bare(tp, rng)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise Bad(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise Bad(f"expected {expected}, got {value!r}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise Bad(f"expected {expected}, got {value!r}") from None
        if not isinstance(value, int):
            raise Bad(f"expected {expected}, got {value!r}")
        if rng and ((rng.min is not None and value < rng.min) or (rng.max is not None and value > rng.max)
                    or (rng.above is not None and value <= rng.above)):
            raise Bad(f"expected {expected}, got {value}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise Bad(f"expected {expected}, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise Bad(f"expected {expected}, got {value!r}") from None
        if not isinstance(value, (int, float)):
            raise Bad(f"expected {expected}, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise Bad(f"expected a finite number, got {value}")
        if rng and ((rng.min is not None and value < rng.min) or (rng.max is not None and value > rng.max)
                    or (rng.above is not None and value <= rng.above)):
            raise Bad(f"expected {expected}, got {value:g}")
        return value
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # a path or a name that happens to look like a number
        if not isinstance(value, str):
            raise Bad(f"expected text, got {value!r}")
        return value
    raise AssertionError(f"unsupported config type {tp!r}")


def convert(tp: Any, value: Any, key: str, ctx: _Context | None = None) -> Any:
    """``value`` checked and converted to the annotation ``tp`` (``key`` names it in errors)."""
    ctx = ctx or _Context()
    bare, rng, nullable = _split(tp)
    if value is None:
        if nullable or bare is Any:
            return None
        raise ConfigError(f"{key}: expected {_what_bare(bare, rng)}, got null", key=key)
    try:
        return _convert_bare(bare, rng, value, key, ctx)
    except Bad as exc:
        raise ConfigError(f"{key}: {exc}", key=key) from None


def _convert_bare(tp: Any, rng: Range | None, value: Any, key: str, ctx: _Context) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if is_dataclass(tp):
        return _build(tp, value, key, ctx)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) is type(choices[0]):
            return value
        text = [str(c) for c in choices]
        close = difflib.get_close_matches(str(value), text, n=1)
        raise Bad(f"expected one of {', '.join(text)}, got {value!r}" + (f" (did you mean '{close[0]}'?)" if close else ""))
    if origin in (list, Sequence, tuple):
        if not isinstance(value, (list, tuple)):
            raise Bad(f"expected {_what_bare(tp, rng)}, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [convert(item, v, f"{key}[{i}]", ctx) for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise Bad(f"expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {str(k): convert(item, v, f"{key}.{k}", ctx) for k, v in value.items()}
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):  # e.g. int | str: the first that fits
            try:
                return convert(option, value, key, ctx)
            except ConfigError:
                continue
        raise Bad(f"expected {' or '.join(what(o) for o in typing.get_args(tp))}, got {value!r}")
    return _convert_scalar(tp, rng, value)


@dataclass
class _Context:
    """What a build needs besides the values: the command, its siblings and what the user set."""

    command: str | None = None
    siblings: Sequence[tuple[str, type]] = ()  # (command, config class) of the stage's other commands
    user_keys: frozenset[str] = frozenset()  # dotted keys set by overrides and flags
    partial: bool = False  # checking a sibling's keys: values are checked, missing keys are fine, nothing is built


def hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a config class (cached: classes never change)."""
    cached = _HINTS.get(cls)
    if cached is None:
        cached = _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return cached


_HINTS: dict[type, dict[str, Any]] = {}


def _declared(cls: type) -> list[dataclasses.Field]:
    return [f for f in fields(cls) if f.name != "extra" and f.init]


def _section_of(cls: type, name: str) -> type | None:
    """The section class of field ``name`` of ``cls`` (None: not a section or not declared)."""
    if not any(f.name == name for f in _declared(cls)):
        return None
    bare, _, _ = _split(hints(cls)[name])
    return bare if is_dataclass(bare) else None


def _user_set_below(key: str, user_keys: Iterable[str]) -> str | None:
    """The user-set key at ``key`` or below it (``data.limit`` for ``data``), if any."""
    for k in user_keys:
        if k == key or k.startswith(key + "."):
            return k
    return None


def _build(cls: type, value: Any, prefix: str, ctx: _Context) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {value!r}", key=prefix or None)
    declared = {f.name: f for f in _declared(cls)}
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, item in value.items():
        name = str(name)
        key = f"{prefix}.{name}" if prefix else name
        if name in declared:
            kwargs[name] = convert(hints(cls)[name], item, key, _narrow(ctx, name))
            continue
        checker = getattr(cls, "extra_keys", None)
        if checker is not None:
            try:
                extra[name] = checker(name, item)
            except Bad as exc:
                raise ConfigError(f"{key}: {exc}", key=key) from None
            continue
        _unread(key, item, ctx)
    if ctx.partial:
        return kwargs
    for name, f in declared.items():
        if name not in kwargs:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                key = f"{prefix}.{name}" if prefix else name
                raise ConfigError(f"missing key '{key}'", key=key, hint="add it to your config, or start from `tagtune config cp`")
    if any(f.name == "extra" for f in fields(cls)):
        kwargs["extra"] = extra
    return cls(**kwargs)


def _narrow(ctx: _Context, name: str) -> _Context:
    """The context one section down: each sibling's section of the same name."""
    if not ctx.siblings:
        return _Context(ctx.command, (), ctx.user_keys, ctx.partial)
    below = [(cmd, sec) for cmd, cls in ctx.siblings if (sec := _section_of(cls, name)) is not None]
    return _Context(ctx.command, below, ctx.user_keys, ctx.partial)


def _unread(key: str, value: Any, ctx: _Context) -> None:
    """A key this command does not declare: a sibling's (dropped, unless the user set it) or unknown."""
    name = key.rsplit(".", 1)[-1]
    owners = [(cmd, cls) for cmd, cls in ctx.siblings if any(f.name == name for f in _declared(cls))
              or getattr(cls, "extra_keys", None) is not None]
    user = _user_set_below(key, ctx.user_keys)
    if user is not None and user != key:  # set below a sibling's section: only a sibling that reads it owns it
        below = user[len(key) - len(name):]
        owners = [(cmd, cls) for cmd, cls in owners if reads(cls, below)]
        if not owners:
            raise ConfigError(f"unknown config key '{user}': nothing reads it", key=user,
                              hint="see --show-config for the keys a command reads")
    if owners:
        if user is not None:
            by = ", ".join(f"`tagtune {cmd}`" for cmd, _ in owners[:2] if cmd)
            raise ConfigError(f"config key '{user}' is not read by `tagtune {ctx.command}`" if ctx.command
                              else f"config key '{user}' is not read by this command",
                              key=user, hint=(f"it is a setting of {by}; " if by else "")
                              + "see --show-config for the keys this command reads")
        cmd, cls = owners[0]  # a stage preset's setting for a sibling command: checked, then dropped
        if any(f.name == name for f in _declared(cls)):
            rest = [(c, s) for c, s in owners if s is not cls]
            convert(hints(cls)[name], value, key, _narrow(_Context(None, [(cmd, cls), *rest], frozenset(), partial=True), name))
        return
    raise unknown_key(key, ctx)


def unknown_key(key: str, ctx: _Context | None = None, known: Sequence[str] = ()) -> ConfigError:
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    names = list(known)
    if ctx is not None:
        pool = {n for _, cls in ctx.siblings for n in (f.name for f in _declared(cls))}
        names += [f"{parent}.{n}" if parent else n for n in sorted(pool)]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "see `tagtune config show` for the valid keys"
    return ConfigError(f"unknown config key '{key}': nothing reads it", key=key, hint=hint)


def _annotation_at(cls: type, key: str) -> Any:
    """The annotation of a dotted key of a config class (None: not declared there)."""
    here: Any = cls
    tp: Any = None
    for part in key.split("."):
        if not is_dataclass(here) or not any(f.name == part for f in _declared(here)):
            return None
        tp = hints(here)[part]
        here, _, _ = _split(tp)
    return tp


def dig(data: Any, key: str) -> Any:
    """The value at a dotted key of nested mappings; None where any part is missing."""
    for part in key.split("."):
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def build(cls: type, data: Mapping[str, Any], *, command: str | None = None,
          siblings: Sequence[tuple[str, type]] = (), user_keys: Iterable[str] = (),
          first: Sequence[str] = ()) -> Any:
    """A checked instance of the config class ``cls`` from plain containers.

    Args:
        cls: The command's config class.
        data: The resolved config (plain dicts and lists).
        command: The command's name (``caption infer``), for messages.
        siblings: ``(command, class)`` of the other commands that share the YAML (a stage preset
            sets keys for several commands); keys only they read are checked, then dropped.
        user_keys: Dotted keys the user set (overrides, flags): one this command does not read is
            refused in one line instead of silently ignored.
        first: Keys to check before the others (the ones set by flags: an error names them rather
            than a key that copies them, such as ``data.split_seed: ${seed}``).

    Raises:
        ConfigError: The first problem, naming its dotted key.
    """
    own = [(command or "", cls)]
    ctx = _Context(command, [*own, *siblings], frozenset(user_keys))
    for key in first:
        tp = _annotation_at(cls, key)
        if tp is not None and not is_dataclass(_split(tp)[0]):
            convert(tp, dig(data, key), key)
    return _build(cls, data, "", ctx)


def to_dict(obj: Any) -> Any:
    """Plain containers of a config object, keys in declaration order (``extra`` folded back in)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: to_dict(getattr(obj, f.name)) for f in _declared(type(obj))}
        out.update({k: to_dict(v) for k, v in (getattr(obj, "extra", None) or {}).items()})
        return out
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def describe(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, what it must be)`` for every key a config class reads (docs, help)."""
    out: list[tuple[str, str]] = []
    for f in _declared(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        bare, _, nullable = _split(hints(cls)[f.name])
        if is_dataclass(bare):
            out += describe(bare, key)
        else:
            optional = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            out.append((key, what(hints(cls)[f.name]) + (" (optional)" if optional else "")))
    if getattr(cls, "extra_keys", None) is not None:
        out.append((f"{prefix}.*", getattr(cls, "extra_doc", "other keys")))
    return out


def keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key a config class reads, sections included."""
    out: list[str] = []
    for f in _declared(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        out.append(key)
        bare, _, _ = _split(hints(cls)[f.name])
        if is_dataclass(bare):
            out += keys(bare, key)
    return out


def reads(cls: type, key: str) -> bool:
    """Whether a config class reads the dotted ``key`` (a section, a key in it, or below an open mapping)."""
    here: Any = cls
    for part in key.split("."):
        if not is_dataclass(here):
            return True  # inside a free mapping (dict) or Any: any key is read
        match = next((f for f in _declared(here) if f.name == part), None)
        if match is None:
            return getattr(here, "extra_keys", None) is not None
        here, _, _ = _split(hints(here)[part])
    return True


def replace(obj: Any, updates: Mapping[str, Any]) -> Any:
    """A copy of a config object with dotted keys set (checked like composed values)."""
    data = to_dict(obj)
    for key, value in updates.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"config has no key '{key}'", key=key)
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"config has no key '{key}'", key=key)
        node[parts[-1]] = value
    return build(type(obj), data)
