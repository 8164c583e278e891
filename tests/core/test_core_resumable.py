"""Crash-safe writers, sharding and safe ids."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import count_lines, read_jsonl, signal_when
from tagtune.errors import ConfigError, InputError, OutputError
from tagtune.files.ids import MAX_ID_BYTES, safe_id
from tagtune.files.resumable import JsonlAppender, atomic_path, atomic_write_text, repair_tail
from tagtune.files.sharding import Shard, parse_shard, resolve_shard, shard_from_env


def test_atomic_write_replaces_whole_file_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_repair_tail_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "capt')
    assert repair_tail(path) == len(b'{"id": "c", "capt')
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n'
    assert repair_tail(path) == 0
    path.write_bytes(b'{"id": "only-partial')
    repair_tail(path)
    assert path.read_bytes() == b""


def test_appender_resumes_and_never_duplicates(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlAppender(path) as sink:
        sink.append([{"id": "a", "v": 1}, {"id": "b", "v": 2}])
    with open(path, "ab") as fh:
        fh.write(b'{"id": "c", "v"')  # a kill mid-line
    with JsonlAppender(path) as sink:
        assert sink.done == {"a", "b"} and sink.repaired_bytes > 0
        sink.append([{"id": "c", "v": 3}])
    ids = [r["id"] for r in read_jsonl(path, complete=True)]
    assert ids == ["a", "b", "c"]
    with JsonlAppender(path, overwrite=True) as sink:
        assert sink.done == set()
    assert path.read_text() == ""


def test_appender_refuses_a_second_writer_and_existing_duplicates(tmp_path):
    path = tmp_path / "out.jsonl"
    first = JsonlAppender(path)
    with pytest.raises(OutputError, match="in use by another tagtune process"):
        JsonlAppender(path)
    first.close()
    path.write_text('{"id": "a"}\n{"id": "a"}\n')
    with pytest.raises(InputError, match=r"out\.jsonl:2: existing output repeats id 'a'"):
        JsonlAppender(path)


def test_appender_survives_sigkill_with_whole_lines_only(tmp_path):
    """A writer killed at a random moment leaves only whole lines once reopened."""
    path = tmp_path / "k.jsonl"
    script = textwrap.dedent(
        f"""
        from tagtune.files.resumable import JsonlAppender
        sink = JsonlAppender({str(path)!r})
        i = len(sink.done)
        while True:
            sink.append([{{"id": str(i), "pad": "x" * 300}}])
            i += 1
        """
    )
    for more in (5, 50, 500):
        before = count_lines(path)
        code = signal_when([sys.executable, "-c", script], lambda target=before + more: count_lines(path) >= target, poll=0.001, timeout=60)
        assert code == -signal.SIGKILL
    with JsonlAppender(path) as sink:
        done = sink.done
    ids = [r["id"] for r in read_jsonl(path, complete=True)]
    assert ids == [str(i) for i in range(len(ids))] and set(ids) == done and len(ids) > 0


def test_unwritable_directory_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(OutputError, match="not writable"):
        JsonlAppender(ro / "x.jsonl")


def test_full_disk_cuts_back_to_the_last_whole_line(tmp_path, monkeypatch):
    path = tmp_path / "full.jsonl"
    sink = JsonlAppender(path)
    sink.append([{"id": "a"}])
    real_fsync = os.fsync

    def no_space(fd):
        import errno

        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputError, match="no space left"):
        sink.append([{"id": "b"}, {"id": "c"}])
    monkeypatch.setattr(os, "fsync", real_fsync)
    sink.close()
    assert path.read_text() == '{"id": "a"}\n'


@pytest.mark.parametrize("spec, expected", [("0/1", (0, 1)), ("3/8", (3, 8)), (None, (0, 1))])
def test_parse_shard(spec, expected):
    shard = parse_shard(spec)
    assert (shard.index, shard.count) == expected


@pytest.mark.parametrize("spec", ["2/2", "-1/2", "a/b", "1", "1/0", "1/2/3"])
def test_bad_shard_specs(spec):
    with pytest.raises(ConfigError, match="bad --shard"):
        parse_shard(spec)


def test_shard_from_launcher_environment():
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "4"}) == Shard(2, 4, "torchrun")
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "3"}) == Shard(2, 4, "slurm-array")
    assert shard_from_env({"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}) == Shard(1, 2, "slurm-tasks")
    assert shard_from_env({}) == Shard()
    assert resolve_shard("1/3", {"RANK": "0", "WORLD_SIZE": "2"}) == Shard(1, 3, "--shard")


@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.text(min_size=1, max_size=20), unique=True, max_size=60), n=st.integers(1, 9))
def test_property_shards_partition_the_ids(ids, n):
    owners = [[i for i in ids if Shard(k, n).owns(i)] for k in range(n)]
    assert sorted(sum(owners, [])) == sorted(ids)


def _digest(raw: str) -> str:
    import hashlib

    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:10]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ok-id_1.2", "ok-id_1.2"), ("take-1", "take-1"), ("曲-1", "曲-1"), ("Ünïcödé", "Ünïcödé"),  # safe ids stay as they are
        ("../../x", "x-{h}"), ("a/b\\c", "a_b_c-{h}"), ("a b", "a_b-{h}"), ("CON", "_CON-{h}"), (".hidden", "hidden-{h}"),
        ("..", "id_{h}"), ("", "id_{h}"),
    ],
)
def test_safe_id_examples(raw, expected):
    """Ids are kept when they are safe file names; a changed id gets a hash of the original appended."""
    out = safe_id(raw)
    assert out == expected.format(h=_digest(raw))
    assert out and "/" not in out and ".." not in out


def test_safe_id_of_a_long_id_is_cut_to_the_byte_limit_and_stays_unique():
    a, b = "x" * 300, "x" * 299 + "y"
    assert len(safe_id(a).encode("utf-8")) <= MAX_ID_BYTES and safe_id(a) != safe_id(b)
    wide = "曲" * 100  # 300 bytes of UTF-8
    assert len(safe_id(wide).encode("utf-8")) <= MAX_ID_BYTES and safe_id(wide).endswith(_digest(wide))


@settings(max_examples=200, deadline=None)
@given(raw=st.text(max_size=300))
def test_property_safe_id_never_escapes_the_directory(raw, tmp_path_factory):
    out = safe_id(raw)
    assert 0 < len(out.encode("utf-8")) <= MAX_ID_BYTES
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert not out.startswith((".", "-"))
    base = Path("/srv/out/audio")
    assert (base / f"{out}.wav").resolve().parent == base


@settings(max_examples=200, deadline=None)
@given(a=st.text(max_size=40), b=st.text(max_size=40))
def test_property_distinct_ids_never_share_a_file_name(a, b):
    if a != b:
        assert safe_id(a) != safe_id(b)


def test_output_under_a_regular_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="exists and is not a directory|cannot write|not writable"):
        JsonlAppender(blocker / "sub" / "x.jsonl")
    assert blocker.read_text() == "x"


def test_atomic_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "cfg.yaml", "x: 1\n")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_second_writer_touches_nothing_before_it_holds_the_lock(tmp_path):
    """--overwrite, or dropping stale lines, while another run writes the file: refused, file intact."""
    out = tmp_path / "out.jsonl"
    with JsonlAppender(out, key="id") as first:
        first.append([{"id": "a", "ok": True}, {"id": "b", "ok": False}])
        before = out.read_bytes()
        with pytest.raises(OutputError, match="in use by another tagtune process"):
            JsonlAppender(out, key="id", overwrite=True)
        with pytest.raises(OutputError, match="in use by another tagtune process"):
            JsonlAppender(out, key="id", done_when=lambda rec: rec["ok"])  # would drop b's line
        assert out.read_bytes() == before
        first.append([{"id": "c", "ok": True}])
    assert [r["id"] for r in map(json.loads, out.read_text().splitlines())] == ["a", "b", "c"]
    with JsonlAppender(out, key="id", done_when=lambda rec: rec["ok"]) as again:  # alone now: b is dropped
        assert again.done == {"a", "c"} and again.dropped == 1
        again.append([{"id": "b", "ok": True}])
    assert [r["id"] for r in map(json.loads, out.read_text().splitlines())] == ["a", "c", "b"]
