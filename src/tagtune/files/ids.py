"""Ids that become file names: sanitised so no id can write outside its output directory."""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_ID_BYTES = 160  # file names stay far below the usual 255-byte limit, with room for a suffix
_UNSAFE = re.compile(r"[^\w.-]+")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def stable_hash(value: str) -> int:
    """A process-independent 64-bit hash (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


def safe_id(raw: object, max_bytes: int = MAX_ID_BYTES) -> str:
    """Turn an arbitrary id into a safe file-name stem that no other id maps to.

    Keeps letters and digits of any script (``曲-1`` stays ``曲-1``), ``.``, ``_`` and ``-``; every
    other run of characters (path separators included) becomes ``_``; leading dots and dashes are
    dropped (no ``..``, no hidden files, no option-like names). Whenever that changed the id, or
    it had to be cut to ``max_bytes`` of UTF-8, a short hash of the original is appended, so two
    ids that differ anywhere never share a file name. The result is never empty.

    Example:
        >>> safe_id("take-1")
        'take-1'
        >>> safe_id("../../etc/passwd")[:11]
        'etc_passwd-'
    """
    original = str(raw)
    text = unicodedata.normalize("NFC", original)
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\.{2,}", ".", text).strip("._-")
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = "_" + text
    if text and text == original and len(text.encode("utf-8")) <= max_bytes:
        return text
    digest = hashlib.sha1(original.encode("utf-8")).hexdigest()[:10]
    text = text.encode("utf-8")[:max_bytes - 11].decode("utf-8", "ignore").rstrip("._-")  # whole characters only
    return f"{text}-{digest}" if text else f"id_{digest}"
