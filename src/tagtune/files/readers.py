"""Reading the files users hand to tagtune: JSONL, JSON, CSV/TSV, Parquet and plain text.

Every reader streams and yields ``(line, record)`` pairs so that errors can name the file and
line (for Parquet: the row). Paths starting with ``pkg:`` point at files packaged with tagtune
(``pkg:demo_tags.jsonl``). Tag columns may hold a comma-separated string, a JSON list string, a
Python-literal list string or a real list: :func:`parse_tags` reads them all.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from tagtune.errors import InputError
from tagtune.files.resumable import check_text, iter_jsonl, json_error

PKG_PREFIX = "pkg:"
FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet", ".txt": "txt",
}


def resources_dir() -> Path:
    """Directory of the packaged data files (taxonomy, demo tag sets)."""
    return Path(str(resources.files("tagtune") / "resources"))


def resolve_path(path: str | Path) -> Path:
    """Expand ``~`` and ``pkg:`` (a file shipped inside the tagtune package)."""
    text = str(path)
    if text.startswith(PKG_PREFIX):
        return resources_dir() / text[len(PKG_PREFIX):].lstrip("/")
    return Path(text).expanduser()


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(
            f"unsupported file type '{Path(path).suffix or '(none)'}'", path,
            hint="use .jsonl, .json, .csv, .tsv, .parquet or .txt",
        )
    if fmt == "json":  # a .json file may be JSON Lines too
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip()
        if not head.startswith(b"["):
            fmt = "jsonl"
    return fmt


def missing_file(path: Path, what: str = "file") -> str | None:
    """Why ``path`` is not a readable file (``does not exist``, ``is a directory ...``), or None."""
    path = Path(path)
    if path.is_dir():
        return f"is a directory, expected a {what}"
    if not path.exists():
        return f"{what} does not exist"
    return None


def _check_file(path: Path) -> None:
    problem = missing_file(path)
    if problem:
        raise InputError(problem, path)
    if path.stat().st_size == 0:
        raise InputError("file is empty", path)


def iter_records(path: str | Path, fmt: str | None = None, text_field: str = "text") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, record)`` for each record of a data file.

    Args:
        path: The file (``pkg:`` allowed).
        fmt: Force a format (``jsonl``, ``json``, ``csv``, ``tsv``, ``parquet``, ``txt``).
        text_field: Field name given to each line of a plain-text file.

    Raises:
        InputError: Missing/empty file, unsupported type, malformed line (file and line named).
    """
    path = resolve_path(path)
    _check_file(path)
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        yield from iter_jsonl(path)
    elif fmt == "json":
        yield from _iter_json_array(path)
    elif fmt in ("csv", "tsv"):
        yield from _iter_csv(path, delimiter="\t" if fmt == "tsv" else ",")
    elif fmt == "parquet":
        yield from _iter_parquet(path)
    elif fmt == "txt":
        yield from _iter_text(path, text_field)
    else:
        raise InputError(f"unknown format '{fmt}'", path)


def _iter_json_array(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", path) from exc
    except json.JSONDecodeError as exc:
        raise InputError(json_error(exc), path, exc.lineno) from exc
    if not isinstance(data, list):
        raise InputError("expected a JSON array of objects", path)
    for i, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            raise InputError(f"array item {i} is a {type(obj).__name__}, expected an object", path)
        check_text(obj, path, i)
        yield i, obj


def _iter_csv(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    line = 1
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:  # -sig: drop the BOM Excel writes
            reader = csv.DictReader(fh, delimiter=delimiter)
            if not reader.fieldnames:
                raise InputError("no header row", path, 1)
            if len(set(reader.fieldnames)) != len(reader.fieldnames):
                raise InputError("header repeats a column name", path, 1)
            if len(reader.fieldnames) == 1:
                _check_delimiter(reader.fieldnames[0], delimiter, path)
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise InputError(f"row has more fields than the header's {len(reader.fieldnames)}", path, line)
                yield line, row
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (near line {line + 1})", path, hint="re-save the file as UTF-8") from exc
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", path, line + 1) from exc


def _check_delimiter(header: str, delimiter: str, path: Path) -> None:
    """A one-column header that holds another separator: the file uses it between fields."""
    for other, name in ((";", "semicolons"), ("\t", "tabs"), (",", "commas")):
        if other != delimiter and header.count(other) >= 1:
            expected = "commas" if delimiter == "," else "tabs"
            raise InputError(f"the header is one column '{header[:60]}': the fields seem separated by {name}, "
                             f"not {expected}", path, 1,
                             hint="save it as CSV with commas between fields (a spreadsheet's 'CSV UTF-8'), "
                                  "or name a tab-separated file .tsv")


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(f"not a readable Parquet file ({str(exc).splitlines()[0]})", path) from exc
    row = 0
    for batch in pf.iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


def _iter_text(path: Path, field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for line, text in enumerate(fh, start=1):
                text = text.strip()
                if text:
                    yield line, {field: text}
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", path, hint="re-save the file as UTF-8") from exc


def columns(path: str | Path) -> list[str]:
    """Column names of a data file (header, or the keys of its first record)."""
    path = resolve_path(path)
    fmt = detect_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    for _, rec in iter_records(path, fmt):
        return list(rec)
    return []


def is_missing(value: Any) -> bool:
    """None, NaN and empty strings count as missing."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


def parse_tags(value: Any) -> list[str]:
    """Read a tag cell in any of the layouts found in public files.

    Accepted: a real list (or numpy / pyarrow array); a JSON list string; a Python-literal list
    string; a numpy repr without commas (``['female singer' 'opera singer']``, as pandas writes
    arrays to CSV); a comma- or semicolon-separated string. Missing cells give ``[]``.

    Raises:
        ValueError: Anything else (callers add file, line and column).
    """
    if is_missing(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") or (text.startswith("(") and text.endswith(")")):  # "pop, rock (live)" is not a list
            return _clean(_parse_list_text(text))
        if text[:1] == "{":
            raise ValueError(f"expected a list of tags, got a mapping: {text[:60]!r}")
        return [t.strip() for t in re.split(r"[,;]", text) if t.strip()]
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # numpy / pyarrow arrays
    if isinstance(value, (list, tuple)):
        return _clean(value)
    raise ValueError(f"expected a list of tags or a comma-separated string, got {type(value).__name__} {value!r}")


def _parse_list_text(text: str) -> list[Any]:
    """A list written as text: JSON, a numpy repr (quoted items, no commas) or a Python literal.

    The numpy form is tried before ``ast.literal_eval``, which would glue ``'a' 'b'`` into ``'ab'``.
    """
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if parsed is None and text.startswith("[") and text.endswith("]"):
        items = [a if a or not b else b for a, b in _QUOTED.findall(text)]
        if len(items) > 1 and not _QUOTED.sub("", text[1:-1]).strip():  # only white space between items
            return [ast.literal_eval(f"'{i}'") if "\\" in i else i for i in items]
    if parsed is None:
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ValueError(f"looks like a list but does not parse: {text[:60]!r}") from None
    if isinstance(parsed, (list, tuple)):
        return list(parsed)
    raise ValueError(f"expected a list of tags, got {type(parsed).__name__}: {text[:60]!r}")


def _clean(items: Any) -> list[str]:
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"tag {item!r} is not a string")
        if item.strip():
            out.append(item.strip())
    return out
