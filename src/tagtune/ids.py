"""Ids that become file names: sanitised so no id can write outside its output directory."""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_ID_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def text_id(text: str, prefix: str = "p") -> str:
    """A stable id derived from text (same text -> same id, across runs and machines)."""
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def stable_hash(value: str) -> int:
    """A process-independent 64-bit hash (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


def safe_id(raw: object, max_length: int = MAX_ID_LENGTH) -> str:
    """Turn an arbitrary id into a safe file-name stem.

    Keeps letters, digits, ``.``, ``_`` and ``-``; every other run of characters (path separators
    included) becomes ``_``; leading dots and dashes are dropped (no ``..``, no hidden files, no
    option-like names); over-long ids are cut and suffixed with a hash of the original so they
    stay unique. The result is never empty.

    Example:
        >>> safe_id("../../etc/passwd")
        'etc_passwd'
    """
    text = unicodedata.normalize("NFKC", str(raw))
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = text.strip("._-")
    if not text:
        text = "id_" + hashlib.sha1(str(raw).encode("utf-8")).hexdigest()[:12]
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = "_" + text
    if len(text) > max_length:
        digest = hashlib.sha1(str(raw).encode("utf-8")).hexdigest()[:10]
        text = text[: max_length - 11].rstrip("._-") + "-" + digest
    return text
