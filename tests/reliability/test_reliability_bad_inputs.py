"""The bad-input matrix (tests/reliability/matrix.py): every case exits 2 with one line naming the
culprit, prints no traceback, and leaves files that existed before the command untouched."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("tagtune_matrix", Path(__file__).with_name("matrix.py"))
matrix = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = matrix  # dataclasses look their module up while the class is built
_spec.loader.exec_module(matrix)


def test_the_matrix_has_at_least_120_cases_with_distinct_names():
    names = [c.name for c in matrix.CASES]
    assert len(names) >= 120 and len(set(names)) == len(names)


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("matrix")


@pytest.mark.parametrize("case", matrix.CASES, ids=[c.name.replace(" ", "-") for c in matrix.CASES])
def test_bad_input_exits_2_with_one_clear_line(case, scratch_root):
    res = matrix.run_case(case, scratch_root / case.name.replace(" ", "_"))
    assert res["code"] == 2, res["stderr"]
    assert "Traceback" not in res["stderr"]
    assert len(res["lines"]) == 1, res["stderr"]
    line = res["lines"][0]
    assert line.startswith("error: ")
    assert case.expect in line, line
    assert res["kept"], "a file that existed before the command was changed"


def test_docs_list_every_case():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text(encoding="utf-8")
    for case in matrix.CASES:
        assert f"| {case.name} |" in doc, f"docs/reliability.md misses '{case.name}': run python tests/reliability/matrix.py --write"
