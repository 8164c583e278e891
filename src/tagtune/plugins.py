"""The one extension mechanism: families of interchangeable parts, each member found by name.

A *family* is a Protocol (what a member must offer, named in the signatures that use it) plus
its built-in members. Wherever a config names a member (``model.backend``, ``verification.checkers``,
``evaluate.fad.backbones``, ``dataset export --format``, ``executor``), the name may be

* a built-in short name (``synth``, ``tempo``, ``parquet``);
* ``package.module:Class``, a class importable in this environment;
* the name of an entry point in the group ``tagtune.<family>`` (``tagtune.audio_backends``,
  ``tagtune.checkers`` ...): how an installed package of yours registers members.

A member declares the packages it needs (``requires = ("librosa",)``) and, for built-ins, the
extra that installs them (``extra = "eval"``). :func:`load` checks them before anything is built,
with one message format for every family; ``tagtune plugins`` lists every member with its origin
and whether its requirements are installed. Members are classes; how one is constructed is part
of its family's Protocol (documented there).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tagtune.errors import ConfigError, DependencyError


@dataclass(frozen=True)
class Family:
    """One extension family.

    Attributes:
        name: ``audio_backends``, ``caption_backends``, ``checkers``, ``backbones``, ``exporters``, ``executors``.
        what: A member in words, for messages (``audio backend``).
        protocol: The Protocol every member follows.
        builtins: Short name -> ``module:Class`` of the members tagtune ships.
        key: The config key or flag that names members (messages point at it).
    """

    name: str
    what: str
    protocol: type
    builtins: Mapping[str, str]
    key: str

    @property
    def group(self) -> str:
        """The entry-point group third-party packages register members in."""
        return f"tagtune.{self.name}"


@dataclass(frozen=True)
class Member:
    """A member as ``tagtune plugins`` lists it."""

    family: str
    name: str
    target: str  # module:Class
    origin: str  # "built-in" or the distribution that registered it ("tagtune-example 0.1")
    missing: tuple[str, ...] = ()  # required packages that are not installed
    error: str = ""  # why it cannot be loaded at all (an import error), if so

    @property
    def available(self) -> bool:
        return not self.missing and not self.error


def _entry_points(family: Family) -> Iterator[Any]:
    from importlib.metadata import entry_points

    yield from entry_points(group=family.group)


def _origin(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "entry point"


def _import(target: str, family: Family, name: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise DependencyError(f"cannot import the {family.what} '{name}' ({target}): {exc}",
                              hint=f"install the package that provides '{missing}'") from exc
    except AttributeError as exc:
        raise ConfigError(f"cannot import the {family.what} '{name}': {module} has no '{attr}'", key=family.key) from exc
    return obj


def missing_requirements(member: Any) -> tuple[str, ...]:
    """The packages a member's ``requires`` names that are not installed (import names)."""
    out = []
    for module in getattr(member, "requires", ()) or ():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(module)
    return tuple(out)


def check_requirements(member: Any, family: Family, name: str) -> None:
    """Raise the one-line DependencyError every family uses when a member's packages are missing."""
    missing = missing_requirements(member)
    if not missing:
        return
    extra = getattr(member, "extra", None)
    install = f"pip install 'tagtune[{extra}]'" if extra else "pip install " + " ".join(missing)
    needs = ", ".join(missing)
    raise DependencyError(f"the {family.what} '{name}' needs {needs}, which {'is' if len(missing) == 1 else 'are'} not installed",
                          hint=f"{install}, or choose another {family.what} ({family.key})")


def _a(what: str) -> str:
    return ("an " if what[:1] in "aeiou" else "a ") + what


def _methods(protocol: type) -> list[str]:
    """The methods a Protocol asks for (its public functions)."""
    return [n for n, v in vars(protocol).items() if not n.startswith("_") and inspect.isfunction(v)]


def _check_member(obj: Any, family: Family, name: str) -> None:
    if not inspect.isclass(obj):
        raise ConfigError(f"{family.key}: '{name}' is not {_a(family.what)}: it names a {type(obj).__name__}, not a class",
                          key=family.key, hint=f"see `tagtune plugins {family.name}` for the {family.what}s")
    absent = [m for m in _methods(family.protocol) if not callable(getattr(obj, m, None))]
    if absent:
        raise ConfigError(f"{family.key}: '{name}' is not {_a(family.what)}: {obj.__name__} has no {', '.join(a + '()' for a in absent)}",
                          key=family.key, hint=f"a {family.what} follows {family.protocol.__module__}.{family.protocol.__name__}")


def resolve(family: Family, name: str) -> tuple[str, str]:
    """``(module:Class, origin)`` of a member name, without importing it."""
    name = str(name).strip()
    if name in family.builtins:
        return family.builtins[name], "built-in"
    if ":" in name:
        return name, "import path"
    for ep in _entry_points(family):
        if ep.name == name:
            return ep.value, _origin(ep)
    known = sorted({*family.builtins, *(ep.name for ep in _entry_points(family))})
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    raise ConfigError(f"{family.key}: unknown {family.what} '{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
                      key=family.key,
                      hint=f"use one of {', '.join(known)}, a 'package.module:Class', or an entry point of {family.group}")


def load(family: Family, name: str) -> Any:
    """The member class ``name`` of ``family``, imported, with its requirements checked.

    Raises:
        ConfigError: An unknown name, or a target that is not a class of the family.
        DependencyError: A package the member needs is not installed.
    """
    target, _ = resolve(family, name)
    obj = _import(target, family, name)
    _check_member(obj, family, name)
    check_requirements(obj, family, name)
    return obj


def members(family: Family) -> list[Member]:
    """Every member of a family: the built-ins, then the registered entry points, each checked."""
    out: list[Member] = []
    listed = [(n, t, "built-in") for n, t in family.builtins.items()]
    shadowed = [ep for ep in _entry_points(family) if ep.name in family.builtins]
    listed += [(ep.name, ep.value, _origin(ep)) for ep in _entry_points(family) if ep.name not in family.builtins]
    for ep in shadowed:  # the built-in wins: say so, rather than hide the package's member
        out.append(Member(family.name, ep.name, ep.value, _origin(ep),
                          error=f"shadowed by the built-in '{ep.name}': name it by {ep.value} instead"))
    for name, target, origin in listed:
        try:
            obj = _import(target, family, name)
            _check_member(obj, family, name)
        except Exception as exc:  # noqa: BLE001 -- a broken third-party member is listed, not fatal
            out.append(Member(family.name, name, target, origin, error=" ".join(str(exc).split())[:200]))
            continue
        out.append(Member(family.name, name, target, origin, missing_requirements(obj)))
    return out
