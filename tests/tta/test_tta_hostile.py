"""The audio stage's second hostile round (issue 23): each case is one line and exit 2, or the right
result with a visible warning. Locks before deletes, unplayable clips, clips without tags, symlinked
clips, read-only folders, a model that cannot load."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import read_jsonl, run_cli, write_jsonl

TAGS = (["fast tempo", "piano"], ["slow tempo", "drums"], ["fast tempo", "bass guitar"], ["slow tempo", "piano"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Four 2-second synth clips (tempo and an instrument each), rendered by the CLI; copy to change it."""
    base = tmp_path_factory.mktemp("hostile")
    prompts = write_jsonl(base / "p.jsonl", [{"id": f"c{i}", "tags": t, "caption": " ".join(t)} for i, t in enumerate(TAGS)])
    res = run_cli("tta", "generate", prompts, "-o", base / "out", "model=tta/synth", "generation.duration=2",
                  "--preset", "quick_test", "device=cpu")
    assert res.code == 0, res.err
    return base / "out"


def _copy(src: Path, dest: Path) -> Path:
    return Path(shutil.copytree(src, dest, symlinks=True))


def _verify(folder: Path, *args: object):
    return run_cli("tta", "verify", folder, "verification.checkers=[tempo]", *args)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def _held_by_another_process(path: Path) -> Iterator[None]:
    """``path``'s lock held by another process, as a running tagtune writer holds its output's."""
    code = ("import fcntl, sys, time; fh = open(sys.argv[1], 'ab'); fcntl.flock(fh.fileno(), fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.kill()
        proc.wait()


# -- 1. locks before deletes ------------------------------------------------------------------------------

def test_verify_force_while_another_run_writes_exits_2_and_keeps_its_files(clips, tmp_path):
    folder = _copy(clips, tmp_path / "out")
    assert _verify(folder).code == 0
    before = _bytes(folder)
    with _held_by_another_process(folder / "verification.jsonl"):
        res = _verify(folder, "--force")
        assert "verification.jsonl is in use by another tagtune process" in res.error()
        assert _bytes(folder) == before  # nothing deleted under the other run
        res = _verify(folder, "verification.tempo.tolerance=0.3")  # stale lines would be cut: refused as well
        assert "in use by another tagtune process" in res.error()
        assert _bytes(folder) == before
    res = _verify(folder, "--force")
    assert res.code == 0, res.err
    assert len(read_jsonl(folder / "verification.jsonl")) == 4


def test_verify_force_refuses_while_a_shard_still_writes_its_part(clips, tmp_path):
    folder = _copy(clips, tmp_path / "out")
    assert _verify(folder, "--shard", "0/2").code == 0
    part = folder / "verification.shard-00000-of-00002.jsonl"
    kept = part.read_bytes()
    with _held_by_another_process(part):
        assert "in use by another tagtune process" in _verify(folder, "--force").error()
    assert part.read_bytes() == kept and not (folder / "verification.jsonl").exists()


def test_generate_overwrite_while_another_run_writes_exits_2_before_anything_changes(clips, tmp_path):
    folder = _copy(clips, tmp_path / "out")
    before = _bytes(folder)
    argv = ("tta", "generate", clips.parent / "p.jsonl", "-o", folder, "model=tta/synth", "generation.duration=1",
            "--preset", "quick_test", "device=cpu")
    with _held_by_another_process(folder / "metadata.jsonl"):
        assert "metadata.jsonl is in use by another tagtune process" in run_cli(*argv, "--overwrite").error()
        assert _bytes(folder) == before  # neither the metadata nor config.yaml nor a clip changed
        assert "in use by another tagtune process" in run_cli(*argv).error()  # its stale lines stay too
        assert _bytes(folder) == before
    res = run_cli(*argv, "--overwrite")
    assert res.code == 0, res.err
    assert [r["duration"] for r in read_jsonl(folder / "metadata.jsonl")] == [1.0] * 4


# -- 2. unplayable clips ------------------------------------------------------------------------------------

def test_unplayable_says_why_for_each_kind_of_bad_clip():
    from tagtune.tta.audio import unplayable

    fine = np.zeros(32000, dtype=np.float32)
    assert unplayable(fine, 16000, 32000, 2.0) is None
    assert unplayable(fine[:-1], 16000, 31999, 2.0) is None  # one frame of slack, as the dataset export allows
    assert unplayable(fine[:-2], 16000, 31998, 2.0) == "the file holds 2.000 s but its metadata line says 2.000 s"
    assert unplayable(fine[:16000], 16000, 16000, 2.0) == "the file holds 1.000 s but its metadata line says 2.000 s"
    assert unplayable(fine[:0], 16000, 0, 4.0) == "no audio frames: the file holds 0.000 s but its metadata line says 4.000 s"
    assert unplayable(fine[:0], 16000, 0, None) == "no audio frames"
    bad = fine.copy()
    bad[[3, 5]] = [np.nan, np.inf]
    assert unplayable(bad, 16000, 32000, 2.0) == "2 of 32000 samples are NaN or infinite (an fp16 overflow writes them)"


def test_verify_judges_nan_empty_and_truncated_clips_unplayable_with_a_warning(clips, tmp_path):
    folder = _copy(clips, tmp_path / "out")
    audio, rate = sf.read(folder / "audio" / "c0.wav", dtype="float32")
    audio[100:200] = np.nan  # what a float clip gets from an fp16 overflow
    audio[300] = np.inf
    sf.write(folder / "audio" / "c0.wav", audio, rate, subtype="FLOAT")
    sf.write(folder / "audio" / "c1.wav", np.zeros(0, dtype=np.float32), rate)
    sf.write(folder / "audio" / "c2.wav", np.zeros(rate // 2, dtype=np.float32), rate)
    res = _verify(folder)
    assert res.code == 0, res.err
    assert "Traceback" not in res.err and "warning: 3 clip(s) unplayable, their tags counted as missed" in res.err
    rows = {r["id"]: r for r in read_jsonl(folder / "verification.jsonl")}
    assert [rows[i].get("unplayable", False) for i in ("c0", "c1", "c2", "c3")] == [True, True, True, False]
    assert rows["c0"]["reason"] == "101 of 64000 samples are NaN or infinite (an fp16 overflow writes them)"
    assert rows["c1"]["reason"] == "no audio frames: the file holds 0.000 s but its metadata line says 2.000 s"
    assert rows["c2"]["reason"] == "the file holds 0.500 s but its metadata line says 2.000 s"
    for ident in ("c0", "c1", "c2"):  # the tempo tag (the one checker) missed, the instrument unjudged as anywhere
        assert rows[ident]["missed_tags"] == [TAGS[int(ident[1])][0]] and rows[ident]["realisation"] == 0.0
        assert rows[ident]["unjudged_tags"] == [TAGS[int(ident[1])][1]] and rows[ident]["realised_tags"] == []
    assert rows["c3"]["realised_tags"] == ["slow tempo"] and "facts" in rows["c3"]
    report = json.loads((folder / "verification_report.json").read_text(encoding="utf-8"))
    assert report["clips_unplayable"] == 3 and {u["id"] for u in report["unplayable"]} == {"c0", "c1", "c2"}
    assert report["by_category"]["tempo"] == {"judged": 4, "realised": 1, "tags": 2, "rate": 0.25}
    assert report["by_checker"]["tempo"]["judged"] == 1  # the checker measured one clip; the others it never heard
    assert "3 clip(s) unplayable" in " ".join(res.out.split())
    again = _verify(folder)  # resumed: the verdicts stand, the warning is given again
    assert again.code == 0 and "3 clip(s) unplayable" in again.err and "0 judged now" in " ".join(again.out.split())


# -- 3. clips without tags ----------------------------------------------------------------------------------

def _drop_tags(folder: Path, ids: set[str]) -> None:
    rows = read_jsonl(folder / "metadata.jsonl")
    write_jsonl(folder / "metadata.jsonl", [{k: v for k, v in r.items() if not (k == "tags" and r["id"] in ids)} for r in rows])


def test_a_few_clips_without_tags_are_counted_and_named_in_a_warning(clips, tmp_path):
    folder = _copy(clips, tmp_path / "out")
    _drop_tags(folder, {"c1", "c3"})
    res = _verify(folder)
    assert res.code == 0, res.err
    assert "warning: 2 of 4 clip(s) have no tags (metadata.jsonl:2, :4)" in " ".join(res.err.split())
    report = json.loads((folder / "verification_report.json").read_text(encoding="utf-8"))
    assert report["clips_without_tags"] == 2 and report["by_category"]["tempo"]["judged"] == 2
    rows = {r["id"]: r for r in read_jsonl(folder / "verification.jsonl")}
    assert rows["c1"]["intended_tags"] == [] and rows["c1"]["realisation"] is None and rows["c0"]["scores"]


def test_a_folder_without_any_tags_is_one_line_naming_its_metadata(clips, tmp_path):
    folder = _copy(clips, tmp_path / "out")
    _drop_tags(folder, {"c0", "c1", "c2", "c3"})
    line = _verify(folder).error()
    assert f"{folder / 'metadata.jsonl'}: field 'tags': no clip has tags: nothing to verify" in line
    assert not (folder / "verification.jsonl").exists()


# -- 4. clips linked in from storage -------------------------------------------------------------------------

def test_a_clip_symlinked_to_storage_outside_is_the_folders_clip(clips, tmp_path):
    folder = _copy(clips, tmp_path / "out")
    storage = tmp_path / "storage"
    storage.mkdir()
    shutil.move(folder / "audio" / "c2.wav", storage / "c2.wav")
    (folder / "audio" / "c2.wav").symlink_to(storage / "c2.wav")
    res = _verify(folder)
    assert res.code == 0, res.err
    rows = {r["id"]: r for r in read_jsonl(folder / "verification.jsonl")}
    assert rows["c2"]["realised_tags"] == ["fast tempo"] and "unplayable" not in rows["c2"]
    merged = run_cli("tta", "merge", folder)
    assert merged.code == 0 and "without a metadata line" not in merged.err  # linked clip: referenced, no orphan


@pytest.mark.parametrize("name", ["../c2.wav", "audio/../../c2.wav", "/etc/passwd"])
def test_a_file_name_that_leaves_the_folder_is_refused(clips, tmp_path, name):
    folder = _copy(clips, tmp_path / "out")
    rows = read_jsonl(folder / "metadata.jsonl")
    rows[2]["file_name"] = name
    write_jsonl(folder / "metadata.jsonl", rows)
    line = _verify(folder).error()
    assert f"metadata.jsonl:3: field 'file_name': file_name '{name}' points outside" in line


def test_clip_path_normalises_the_name_without_resolving_links(tmp_path):
    from tagtune.tta.merge import clip_path

    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").symlink_to("/nowhere/a.wav")
    got = clip_path(tmp_path, {"file_name": "./audio/sub/../a.wav"}, tmp_path / "m.jsonl", 1)
    assert got == tmp_path.absolute() / "audio" / "a.wav" and got.is_symlink()


# -- 5. a read-only folder --------------------------------------------------------------------------------------

def test_verify_in_a_read_only_folder_says_the_folder_must_be_writable(clips, tmp_path, monkeypatch):
    folder = _copy(clips, tmp_path / "out")
    if os.geteuid() == 0:  # root writes anywhere: the folder answers as a read-only mount does
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder and mode & os.W_OK else real(p, mode, **kw))
    else:
        folder.chmod(0o555)
    try:
        res = _verify(folder, "-o", tmp_path / "report.json")
    finally:
        folder.chmod(0o755)
    line = res.error()
    assert "not writable: tta verify writes its per-clip verdicts (verification.jsonl) into the folder it judges" in line
    assert f"make {folder} writable" in line and "choose another output directory" not in line
    assert not (tmp_path / "report.json").exists()


# -- 6. a model that cannot load ------------------------------------------------------------------------------------

def test_a_model_that_cannot_load_leaves_no_files(clips, tmp_path):
    prompts = clips.parent / "p.jsonl"
    new = tmp_path / "new"
    res = run_cli("tta", "generate", prompts, "-o", new, "--preset", "quick_test", "model.name=/nonexistent", "device=cpu")
    assert "'/nonexistent'" in res.error() and not new.exists()
    folder = _copy(clips, tmp_path / "out")
    before = _bytes(folder)
    res = run_cli("tta", "generate", prompts, "-o", folder, "--preset", "quick_test", "--overwrite",
                  "model.name=/nonexistent", "device=cpu")
    assert "'/nonexistent'" in res.error() and _bytes(folder) == before
