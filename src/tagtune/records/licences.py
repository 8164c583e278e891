"""Licences as data: which licence each input of a dataset carries and what that obliges.

The registry (``resources/licences.yaml``) maps model ids and data sources (shell patterns) to a
licence and its obligations (notices, naming, NC/SA terms). From the inputs of a run this module
derives the licence table of the card, the strictest terms the dataset inherits, and whether the
declared dataset licence is less restrictive than an input's (``pipeline run`` warns,
``dataset export --push`` refuses without an explicit flag).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any


@dataclass(frozen=True)
class Licence:
    id: str
    name: str
    url: str
    commercial: bool
    share_alike: bool
    custom: bool = False


@dataclass
class Source:
    """One input of a dataset (a model or data) with its licence."""

    role: str            # what it did: tags data, caption model, audio model ...
    identifier: str      # the model id or data path as configured
    what: str            # the registry's description ("" when unknown)
    licence: Licence | None
    obligations: list[str] = field(default_factory=list)
    notice: str = ""

    @property
    def display(self) -> str:
        """The identifier as a card shows it: a Hub id or name as given, a local path by its last part
        (a published card never names a path of the machine it was made on)."""
        text = self.identifier
        if text.startswith(("/", "~", "./", "../")) or "\\" in text or ":\\" in text:
            name, _ = identity(text)
            return name if name != text else PurePosixPath(text.replace("\\", "/").rstrip("/")).name
        return text

    def to_dict(self) -> dict[str, Any]:
        """The source as ``provenance.json`` records it (read back with :meth:`from_dict`)."""
        return {"role": self.role, "id": self.identifier, "what": self.what,
                "license": self.licence.id if self.licence else None,
                "license_name": self.licence.name if self.licence else UNKNOWN, "obligations": list(self.obligations)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Source:
        ident = data.get("license")
        return cls(str(data["role"]), str(data["id"]), str(data.get("what") or ""),
                   declared_licence(ident) if ident else None, list(data.get("obligations") or []))


UNKNOWN = "unknown: check before publishing"


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, Any]:
    import yaml

    from tagtune.files.readers import resources_dir

    return yaml.safe_load((resources_dir() / "licences.yaml").read_text(encoding="utf-8"))


def licence(licence_id: str) -> Licence | None:
    """The registry's entry for a licence id (``cc-by-4.0``...), or None."""
    entry = _registry()["licences"].get(str(licence_id).lower())
    return None if entry is None else Licence(id=str(licence_id).lower(), **entry)


def declared_licence(licence_id: str) -> Licence:
    """A licence id given by the user: the registry's entry, or a custom licence of that name."""
    return licence(licence_id) or Licence(str(licence_id), str(licence_id), "", True, False, True)


def _entry(identifier: str) -> dict[str, Any] | None:
    text = str(identifier).strip().lower()
    names = {text, PurePosixPath(text.rstrip("/")).name}
    for entry in _registry()["sources"]:
        if any(fnmatch.fnmatchcase(n, p) for p in entry["match"] for n in names):
            return entry
    return None


_HUB_CACHE = re.compile(r"(?:^|/)(models|datasets)--([^/]+?)--([^/]+)(?:/|$)")


def identity(identifier: str) -> tuple[str, str | None]:
    """What a model or data path *is*: ``(Hub id or the identifier, licence id its own card declares)``.

    A licence follows the model, not the path it was loaded from: a Hugging Face cache path
    (``.../models--facebook--musicgen-small/snapshots/<rev>``) names its repo; a local copy is known
    by the ``license:`` of its model card (``README.md``) and the Hub id its ``config.json`` records
    (``_name_or_path``), so a renamed copy keeps its licence.
    """
    text = str(identifier).strip()
    found = _HUB_CACHE.search(text.replace("\\", "/"))
    name = f"{found.group(2)}/{found.group(3)}" if found else text
    folder = Path(text).expanduser()
    card_licence = None
    if folder.is_dir():
        card_licence = _card_licence(folder / "README.md")
        recorded = _recorded_name(folder / "config.json")
        if not found and recorded:
            name = recorded
    return name, card_licence


def _card_licence(readme: Path) -> str | None:
    """The ``license:`` of a model card's YAML header, if any."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("---"):
        return None
    import yaml

    try:
        header = yaml.safe_load(text.split("---", 2)[1])
    except yaml.YAMLError:
        return None
    value = header.get("license") if isinstance(header, dict) else None
    return str(value).lower() if isinstance(value, str) and value.strip() and value != "other" else None


def _recorded_name(config: Path) -> str | None:
    """A Hub id a saved ``config.json`` records as its origin (``_name_or_path``), if it looks like one."""
    import json

    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(value, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", value) and not Path(value).exists():
        return value
    return None


def lookup(identifier: str, role: str) -> list[Source]:
    """The sources behind one input (itself, then what it derives from), known by what the input is
    (:func:`identity`), not the path it was loaded from; unknown inputs give a source without a
    licence, so the card says to check it and ``--push`` refuses until you do."""
    name, card_licence = identity(identifier)
    entry = _entry(name)
    if entry is None and card_licence:
        return [Source(role, str(identifier), "licence from its model card", declared_licence(card_licence))]
    if entry is None:
        return [Source(role, str(identifier), "", None)]
    out = [Source(role, str(identifier), entry["what"], licence(entry["licence"]), list(entry.get("obligations", [])),
                  entry.get("notice", ""))]
    for parent in entry.get("derived_from", []):
        out += [Source(f"{role} (derived from)", s.identifier, s.what, s.licence, s.obligations, s.notice)
                for s in lookup(parent, role)]
    return out


def sources(inputs: Mapping[str, str | None], declared: Mapping[str, str] | None = None) -> list[Source]:
    """Every source of a run from ``{role: identifier}`` (roles without an input are skipped).

    ``declared`` (``dataset.input_licenses``) gives the licence of a role's input yourself: for a
    file of your own the registry cannot know, or to record what you checked.
    """
    out: list[Source] = []
    for role, ident in inputs.items():
        if not ident:
            continue
        found = lookup(ident, role)
        if declared and role in declared:
            found[0].licence = declared_licence(declared[role])
            found[0].what = found[0].what or "declared in dataset.input_licenses"
        out += found
    return out


def inherited(srcs: Iterable[Source]) -> str:
    """The least restrictive Creative Commons licence that respects every input's terms."""
    srcs = list(srcs)
    nc = any(s.licence is not None and not s.licence.commercial for s in srcs)
    sa = any(s.licence is not None and s.licence.share_alike for s in srcs)
    return {(False, False): "cc-by-4.0", (False, True): "cc-by-sa-4.0", (True, False): "cc-by-nc-4.0",
            (True, True): "cc-by-nc-sa-4.0"}[(nc, sa)]


def conflicts(declared: str, srcs: Iterable[Source]) -> list[str]:
    """Why the declared dataset licence is less restrictive than an input's (empty: no conflict)."""
    mine = licence(declared)
    out: list[str] = []
    for s in srcs:
        if s.licence is None:
            continue
        if not s.licence.commercial and (mine is None or mine.commercial):
            out.append(f"{s.what or s.identifier} is {s.licence.name} (non-commercial) but the dataset is declared {declared}")
        if s.licence.share_alike and (mine is None or not mine.share_alike):
            out.append(f"{s.what or s.identifier} is {s.licence.name} (share-alike) but the dataset is declared {declared}")
    return list(dict.fromkeys(out))


def unknown(srcs: Iterable[Source]) -> list[str]:
    """Inputs the registry does not know (their licence must be checked by hand)."""
    return [f"{s.role}: {s.display}" for s in srcs if s.licence is None]


def obligations(srcs: Iterable[Source]) -> list[str]:
    return list(dict.fromkeys(o for s in srcs for o in s.obligations))


def notices(srcs: Iterable[Source]) -> list[str]:
    return list(dict.fromkeys(s.notice for s in srcs if s.notice))


def card_licence(declared: str) -> dict[str, str]:
    """Card metadata for a licence: a Hub id, or ``other`` + ``license_name`` / ``license_link``."""
    entry = licence(declared)
    if entry is not None and entry.custom and entry.id != "other":
        return {"license": "other", "license_name": entry.id, "license_link": entry.url}
    return {"license": declared}


def adapter_licence_text(base_model: str) -> str:
    """LICENSE.md written beside a LoRA adapter: the base model's licence, notice and obligations."""
    srcs = lookup(base_model, "base model")
    base = srcs[0]
    lines = ["# Licence of this adapter", "",
             f"This LoRA adapter was trained on top of `{base_model}` with tagtune. Using it means using that model:"]
    if base.licence is None:
        lines += ["", "tagtune does not know that model's licence: check its model card before you share or use the adapter."]
    else:
        lines += ["", f"- Base model licence: {base.licence.name} ({base.licence.url})"]
        lines += [f"- {o}" for o in base.obligations]
    if base.notice:
        lines += ["", "## Notice", "", base.notice]
    return "\n".join(lines) + "\n"
