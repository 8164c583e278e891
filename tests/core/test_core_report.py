"""The reporter stage code talks to instead of printing: silent by default, captured in tests, labelled per stage."""

from __future__ import annotations

from tagtune.report import SILENT, CaptureReporter, Reporter


def test_silent_reporter_accepts_everything_and_shows_nothing(capsys):
    with SILENT.progress("work", total=3, unit="items") as task:
        task.advance()
        task.update(completed=3, info="done")
    SILENT.note("a note")
    SILENT.warn("a warning")
    assert task.completed == 3 and task.closed
    assert capsys.readouterr() == ("", "")


def test_capture_reporter_keeps_notes_warnings_and_tasks():
    rep = CaptureReporter()
    with rep.progress("captioning", total=4, unit="captions") as task:
        task.advance(2)
        task.advance(2, info="fast")
    rep.note("read 4 rows")
    rep.warn("2 captions came out empty")
    assert rep.notes == ["read 4 rows"] and rep.warnings == ["2 captions came out empty"]
    (seen,) = rep.tasks
    assert (seen.description, seen.total, seen.completed, seen.unit, seen.info, seen.closed) == (
        "captioning", 4, 4, "captions", "fast", True)
    assert rep.updates == 2  # one per advance


def test_child_reporters_label_their_tasks_and_messages():
    rep = CaptureReporter()
    child = rep.child("caption")
    assert isinstance(child, Reporter)
    with child.progress("captioning", total=1) as task:
        task.advance()
    child.note("resuming")
    child.warn("slow")
    assert [t.description for t in rep.tasks] == ["[caption] captioning"] and rep.tasks[0].closed
    assert rep.notes == ["[caption] resuming"] and rep.warnings == ["[caption] slow"]
