"""The instructor kit's assignments: every master notebook builds with ``otter assign`` (which grades
the solution with the autograder and fails unless it scores full marks), the solution scores full
marks under ``otter run`` and the untouched student version scores below half."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("assignments_build", ROOT / "assignments" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


def _cells(name):
    return nbformat.read(ROOT / "assignments" / f"{name}.ipynb", as_version=4).cells


def _questions(cells):
    """{question name: {"points", "manual", "tests": [test sources]}} from otter's raw-cell blocks."""
    questions, current, in_tests = {}, None, False
    for cell in cells:
        text = cell.source.strip()
        if cell.cell_type == "raw" and text.startswith("# BEGIN QUESTION"):
            fields = dict(line.split(": ", 1) for line in text.splitlines()[1:])
            current = fields["name"]
            questions[current] = {"points": float(fields["points"]), "manual": fields.get("manual") == "true",
                                  "tests": []}
        elif cell.cell_type == "raw" and text in ("# BEGIN TESTS", "# END TESTS"):
            in_tests = text == "# BEGIN TESTS"
        elif in_tests and cell.cell_type == "code":
            questions[current]["tests"].append(cell.source)
    return questions


@pytest.mark.parametrize("name", build.NAMES)
def test_master_notebook_format(name):
    cells = _cells(name)
    lecture_setup = next(c for c in nbformat.read(ROOT / "notebooks" / "06_saliency.ipynb", as_version=4).cells
                         if c.get("id") == "setup")
    assert cells[0].cell_type == "raw" and cells[0].source.startswith("# ASSIGNMENT CONFIG")
    assert [c.source for c in cells if c.cell_type == "code"][0] == lecture_setup.source
    assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), "committed without outputs"
    questions = _questions(cells)
    graded = {q: v for q, v in questions.items() if not v["manual"]}
    assert len(graded) >= 4 and len(questions) - len(graded) >= 2
    for q, v in graded.items():
        hidden = [t for t in v["tests"] if t.lstrip().startswith("# HIDDEN")]
        assert hidden and len(hidden) < len(v["tests"]), f"{name} {q} needs public and hidden tests"


def test_assignments_build_and_grade(tmp_path):
    """The CI check of the kit (about a minute per assignment on 2 cores): build all, grade both versions."""
    report = build.build(build.NAMES, tmp_path, check=True, log=lambda *_: None)
    for name, result in report.items():
        points, possible = result["student"]
        assert possible == sum(v["points"] for v in _questions(_cells(name)).values() if not v["manual"])
        assert points < possible / 2, f"{name}: the untouched student version scores {points} of {possible}"
        solution = tmp_path / name / "autograder" / f"{name}.ipynb"
        assert build.grade(solution, tmp_path / f"{name}-autograder.zip") == (possible, possible)
        assert (tmp_path / f"{name}-student.zip").is_file()
        student = nbformat.read(tmp_path / name / "student" / f"{name}.ipynb", as_version=4)
        assert "# BEGIN SOLUTION" not in json.dumps(student) and "HIDDEN" not in json.dumps(student)
