"""The instructor kit's assignments, without running them end to end (tests/test_instructor.py does,
following the README): the master notebooks' format; the tests grade the student's own code (the
lecturekit functions that would answer are switched off, the references are the autograder's own);
the checks say what is wrong; each wrong student of tests/assignment_students.py gets its score; the
Gradescope zip carries what grading needs."""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch

import lecturekit as lk
from assignment_students import STUDENTS, messages, notebook, score

ROOT = Path(__file__).resolve().parent.parent


def _module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _module("assignments_build", ROOT / "assignments" / "build.py")
gradescope = _module("assignments_gradescope", ROOT / "assignments" / "gradescope.py")
checks = _module("grading_checks", ROOT / "assignments" / "grading_checks.py")
ref = _module("grading_reference", ROOT / "assignments" / "grading_reference.py")


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


def _graded_functions(name):
    """{question: the notebook function it grades}, from the write_yourself calls of its tests."""
    out = {}
    for q, v in _questions(_cells(name)).items():
        names = {m for t in v["tests"] for m in re.findall(r'write_yourself\("(\w+)"\)', t)}
        if names:
            out[q] = names
    return out


@pytest.mark.parametrize("name", build.NAMES)
def test_master_notebook_format(name):
    cells = _cells(name)
    lecture_setup = next(c for c in nbformat.read(ROOT / "notebooks" / "06_saliency.ipynb", as_version=4).cells
                         if c.get("id") == "setup")
    assert cells[0].cell_type == "raw" and cells[0].source.startswith("# ASSIGNMENT CONFIG")
    config = cells[0].source
    assert "ok_format: false" in config and "- grading_checks.py" in config and "- grading_reference.py" in config
    assert "requirements:" not in config, "build.py writes the autograder's requirements (pinned torch, the wheel)"
    assert [c.source for c in cells if c.cell_type == "code"][0] == lecture_setup.source
    assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), "committed without outputs"
    questions = _questions(cells)
    graded = {q: v for q, v in questions.items() if not v["manual"]}
    assert len(graded) >= 4 and len(questions) - len(graded) >= 2
    for q, v in graded.items():
        hidden = [t for t in v["tests"] if t.startswith("# HIDDEN\n")]
        assert hidden and len(hidden) < len(v["tests"]), f"{name} {q} needs public and hidden tests"
        assert len(v["tests"]) >= 2, f"{name} {q}: each property its own test case"
        for t in v["tests"]:
            tree = ast.parse(t)
            assert [type(n) for n in tree.body] == [ast.FunctionDef, ast.Expr], "otter's exception-based format"
            assert ast.get_docstring(tree.body[0]), f"{name} {q}: each test says what it checks"
            assert "write_yourself(" in t, f"{name} {q}: the student's function runs inside write_yourself"
    submit = next(c.source for c in cells if c.cell_type == "markdown" and c.source.startswith("## Submit"))
    assert "zip" in submit and "upload the notebook" not in submit.lower()
    assert 'Upload the zip file this cell makes' in config


@pytest.mark.parametrize("name", build.NAMES)
def test_tests_use_no_library_answer(name):
    """No test compares with a lecturekit function that a question asks to write (the references are
    grading_reference's), and the write_yourself table covers every graded function."""
    answers = {n.partition(":")[2].split(".")[0] for names in checks.LIBRARY_ANSWERS.values() for n in names}
    for q, v in _questions(_cells(name)).items():
        for t in v["tests"]:
            used = set(re.findall(r"\blk\.\w+\.(\w+)", t))
            assert not used & answers, f"{name} {q} uses lecturekit's {used & answers} in a test"
    for q, functions in _graded_functions(name).items():
        assert functions <= set(checks.LIBRARY_ANSWERS), f"{name} {q}: {functions} not in LIBRARY_ANSWERS"


def test_library_answers_resolve():
    """Every function of the table is found in this lecturekit (a renamed one must be renamed there)."""
    missing = [n for names in checks.LIBRARY_ANSWERS.values() for n in names if checks.library_function(n) is None]
    assert not missing, f"LIBRARY_ANSWERS names functions lecturekit no longer has: {missing}"


def test_write_yourself_switches_off_aliases_and_restores():
    from lecturekit.attribution import saliency as alias
    model = lk.teaching.load_model()[0].requires_grad_(False)
    x = lk.teaching.preprocess(lk.teaching.load_sample()[0][:2])
    before = alias(model, x, 1)
    with checks.write_yourself("saliency"):
        for fn in (lambda: lk.attribution.saliency(model, x, 1), lambda: alias(model, x, 1),
                   lambda: lk.attribution.smoothgrad(model, x, 1)):
            with pytest.raises(NotImplementedError, match="write this yourself: the library's saliency|smoothgrad"):
                fn()
        assert lk.attribution.occlusion(model, x, 1, patch=14, stride=14).shape == (2, 28, 28)   # not this question's
    torch.testing.assert_close(alias(model, x, 1), before)
    with checks.write_yourself("GuidedReLU"), pytest.raises(NotImplementedError, match="GuidedReLU"):
        lk.attribution._GuidedReLU.apply(torch.randn(3))
    assert lk.attribution._GuidedReLU.apply(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]
    with pytest.raises(ValueError, match="no entry for"):
        with checks.write_yourself("salency"):
            pass


def test_write_yourself_keeps_a_closure_working():
    def outer():
        k = 3

        def inner(v):
            return v * k
        return inner
    fn = outer()
    code = fn.__code__
    fn.__code__ = checks._failing_code(fn, "write this yourself: no")
    with pytest.raises(NotImplementedError, match="write this yourself: no"):
        fn(2)
    fn.__code__ = code
    assert fn(2) == 6


def test_expect_close_says_what_is_wrong():
    want = torch.tensor([1.0, -2.0, 3.0])

    def says(got, pattern, **kw):
        with pytest.raises(AssertionError, match=pattern):
            checks.expect_close(got, want, "f(x)", **kw)
    checks.expect_close(want.clone(), want, "f(x)")
    says([1, 2], r"should return a torch.Tensor of shape \(3,\), got list")
    says(want[None], r"has shape \(1, 3\); expected \(3,\)")
    says(want.double(), "is torch.float64; expected torch.float32: keep the dtype")
    says(-want, "has the wrong sign")
    says(want.abs(), "some signs differ: is an absolute value missing")
    says(4 * want, "times 4: a constant factor")
    says(want.abs(), "it gives what the absolute value gives", near={"the absolute value": want.abs()})
    says(torch.tensor([1.0, 5.0, 3.0]), r"expected \[1.0, -2.0, 3.0\], got \[1.0, 5.0, 3.0\]")
    big = torch.arange(20.0)
    with pytest.raises(AssertionError, match=r"largest difference 7 at index \(4,\): got 11, expected 4"):
        checks.expect_close(torch.where(big == 4, 11.0, big), big, "g(x)")
    with pytest.raises(AssertionError, match="should be a Python float"):
        checks.expect_number(torch.tensor(1.0), 1.0, "h(x)")
    with pytest.raises(AssertionError, match="it gives what the signed ranks give"):
        checks.expect_number(-0.2, 1.0, "h(x)", near={"the signed ranks": -0.2})


def test_reference_agrees_with_lecturekit():
    """The autograder's references compute what lecturekit computes (lecturekit is the oracle here,
    in the project's own tests, never at grading)."""
    model = lk.teaching.load_model()[0].requires_grad_(False)
    imgs, labels = lk.teaching.load_sample()
    x = lk.teaching.preprocess(imgs[:3])
    t = labels[:3]
    torch.testing.assert_close(ref.saliency(model, x, t), lk.attribution.saliency(model, x, t))
    torch.testing.assert_close(ref.guided_backprop(model, x, t), lk.attribution.guided_backprop(model, x, t))
    torch.testing.assert_close(ref.grad_cam(model, x, t, "relu2"), lk.attribution.grad_cam(model, x, t, layer="relu2"))
    torch.testing.assert_close(ref.occlusion(model, x, t, 6, 5), lk.attribution.occlusion(model, x, t, patch=6, stride=5))
    a, b = torch.randn(2, 5, 6, dtype=torch.float64), torch.randn(2, 5, 6, dtype=torch.float64)
    assert abs(ref.rank_correlation(a, b) - lk.sanity.rank_correlation(a, b)) < 1e-12
    img = torch.rand(2, 3, 28, 28)
    torch.testing.assert_close(ref.tv_penalty(img, 0.3), lk.ascent.tv(0.3)(img, None))
    torch.testing.assert_close(ref.l2_penalty(x, 0.1), lk.ascent.l2(0.1)(None, x))
    f = torch.randn(2, 4, 5, 3)
    torch.testing.assert_close(ref.gram(f), lk.style.gram(f))
    net = lk.style.feature_net("random-multiscale")
    content, style_img = lk.images.load("chelsea", size=32), lk.images.load("coffee", size=32)
    grams = ref.style_targets(net, style_img)
    lib_grams = lk.style.style_targets(net, style_img)
    for layer in net.style_layers:
        torch.testing.assert_close(grams[layer], lib_grams[layer])
    photos = torch.cat([content, style_img])
    out = photos.flip(3)
    terms = lk.faststyle.loss_terms(net, out, photos, grams, 1.0, 10.0, 0.1)
    with torch.no_grad():
        torch.testing.assert_close(ref.fast_style_loss(net, out, photos, grams, 1.0, 10.0, 0.1), sum(terms.values()))


@pytest.fixture(scope="module")
def assigned(tmp_path_factory):
    """``otter assign`` of every master notebook, without its own grading run (a few seconds each)."""
    out = tmp_path_factory.mktemp("assigned")
    for name in build.NAMES:
        run = subprocess.run([*build._otter(), "assign", "--no-pdfs", "--no-run-tests",
                              str(ROOT / "assignments" / f"{name}.ipynb"), str(out / name)],
                             env=build._env(), capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", build.NAMES)
def test_wrong_students_score_as_expected(assigned, name):
    """Each student of tests/assignment_students.py gets the points listed there, question by question:
    the solution full marks, library one-liners 0, each mistake loses the share of its property."""
    autograder = assigned / name / "autograder"
    possible = {q: v["points"] for q, v in _questions(_cells(name)).items() if not v["manual"]}
    assert STUDENTS[name]["solution"][1] == possible
    assert "library_calls" in STUDENTS[name] and not STUDENTS[name]["library_calls"][1]
    table, wrong = {}, []
    for student, (edits, want) in STUDENTS[name].items():
        got = score(notebook(autograder / f"{name}.ipynb", edits), autograder)
        table[student] = got
        assert set(got) == set(possible)
        for q in possible:
            if abs(got[q] - want.get(q, 0)) > 1e-6:
                said = messages(notebook(autograder / f"{name}.ipynb", edits), autograder, q)
                wrong.append(f"{student} {q}: {got[q]:g} points, expected {want.get(q, 0):g}\n" + "\n".join(said))
    print(json.dumps({s: {"total": round(sum(v.values()), 2), **{q: round(p, 2) for q, p in v.items()}}
                      for s, v in table.items()}, indent=1))
    assert not wrong, "\n\n".join(wrong)


def test_student_version_carries_the_checks_not_the_references(assigned):
    for name in build.NAMES:
        student = assigned / name / "student"
        assert (student / "grading_checks.py").is_file() and not (student / "grading_reference.py").exists()
        text = json.dumps(nbformat.read(student / f"{name}.ipynb", as_version=4))
        assert "# BEGIN SOLUTION" not in text and "HIDDEN" not in text
        tests = "".join(p.read_text() for p in (student / "tests").glob("q*.py"))
        assert "grading_reference" not in tests and "hidden=True" not in tests
        grader_cell = next(c.source for c in nbformat.read(student / f"{name}.ipynb", as_version=4).cells
                           if "TESTS_ZIP" in c.source)
        assert 'm == "grading_checks.py"' in grader_cell, "Colab fetches the checks with the tests"


def test_gradescope_zip(assigned, tmp_path):
    """What Gradescope gets: otter's tests and configuration, the grading files, this project's
    setup.sh and run_autograder (quick and offline) and the lecturekit wheel with pinned CPU torch."""
    name = "style"
    otter_zip = next((assigned / name / "autograder").glob("*-autograder_*.zip"))
    wheel = build.lecturekit_wheel(tmp_path)
    out = build.gradescope_zip(otter_zip, tmp_path / "style-autograder.zip", wheel)
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "run_otter.py", "requirements.txt", "otter_config.json",
                "files/grading_checks.py", "files/grading_reference.py", wheel.name} <= names
        assert "environment.yml" not in names and any(n.startswith("tests/q") for n in names)
        for script in ("setup.sh", "run_autograder"):
            assert (z.getinfo(script).external_attr >> 16) & 0o111, f"{script} is executable"
        reqs = z.read("requirements.txt").decode().split()
        run_autograder = z.read("run_autograder").decode()
        setup = z.read("setup.sh").decode()
    assert reqs[:2] == build.TORCH_PINS and reqs[2] == f"./{wheel.name}" and reqs[3].startswith("otter-grader[grading]==")
    tasks = (ROOT / "tasks.sh").read_text()
    assert all(f'"{pin}"' in tasks for pin in build.TORCH_PINS), "the pins are those tasks.sh installs"
    for key, value in build.GRADING_ENV.items():
        assert f"{key}={value}" in run_autograder
    assert "download.pytorch.org/whl/cpu" in setup and "git+" not in setup + "".join(reqs)
    with zipfile.ZipFile(wheel) as w:
        assert {"lecturekit/data/teaching_fmnist.pt", "lecturekit/attribution.py"} <= set(w.namelist())


def test_gradescope_places_a_submission_as_gradescope_does(tmp_path, monkeypatch):
    nb = tmp_path / "style.ipynb"
    nb.write_text("{}")
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as z:
        z.write(nb, "style.ipynb")
    gradescope.place_submission(tmp_path / "export.zip", tmp_path / "a" / "submission")
    gradescope.place_submission(nb, tmp_path / "b" / "submission")
    assert (tmp_path / "a" / "submission" / "style.ipynb").is_file() and (tmp_path / "b" / "submission" / "style.ipynb").is_file()
    with pytest.raises(ValueError, match=r"a notebook \(.ipynb\) or the zip its export cell makes, not notes.txt"):
        gradescope.place_submission(tmp_path / "notes.txt", tmp_path / "c")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("LECTUREKIT_MODEL", "teaching")
    env = gradescope.clean_env(tmp_path, LECTUREKIT_TORCH_INDEX="")
    assert "PYTHONPATH" not in env and "LECTUREKIT_MODEL" not in env and env["LECTUREKIT_TORCH_INDEX"] == ""
    assert env["LECTUREKIT_AUTOGRADER_DIR"] == str(tmp_path)
    assert str(Path(sys.executable).parent) not in env["PATH"].split(":")
    assert gradescope.main([str(tmp_path / "missing.zip"), str(nb)]) == 1


def test_build_refuses_an_unknown_assignment(capsys):
    assert build.main(["saliency"]) == 2
    assert "unknown assignment(s): saliency. Valid: network_visualization, attribution, style" in capsys.readouterr().err
