"""The README's "Assignments, autograded" section, followed word for word in a fresh copy of the
repository: every command of its bash blocks runs, in order, and does what the README says.

Run by tasks.sh as its own step (pytest -m instructor tests/test_instructor.py; about 8 minutes on 2
cores): it builds and grades all three assignments, grades a submission with ``otter run`` and
then with the Gradescope zip in a fresh virtual environment (setup.sh installs torch from pip's
configuration here: LECTUREKIT_TORCH_INDEX is empty, as the README says for a machine that cannot
reach PyTorch's index).

Two things a test cannot do as a reader would: ``pip install`` runs with ``--dry-run`` (it resolves
lecturekit from the checkout with the instructor extra, without replacing the environment the tests
run in), and the checkout is put first on PYTHONPATH in its place. The submission the README grades,
submissions/alice.ipynb, is made here: the style solution with one-line lecturekit calls for the
three losses (questions 1 to 3), student "library_losses" of tests/assignment_students.py. Both
graders must give her its listed score: 0 for those questions, and the public end-to-end checks of
the loop and the training step fail too, since they run with her losses.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from assignment_students import STUDENTS, notebook

pytestmark = pytest.mark.instructor
ROOT = Path(__file__).resolve().parent.parent
SECTION = "### Assignments, autograded"
ALICE, ALICE_POINTS = STUDENTS["style"]["library_losses"]
ALICE_POINTS = {q: ALICE_POINTS.get(q, 0) for q in STUDENTS["style"]["solution"][1]}


def readme_commands() -> list[str]:
    """The commands of the bash blocks of the README's assignments section, in order (comments cut)."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    section = text[start:text.index("\n### ", start + len(SECTION))]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def fresh_copy(dest: Path) -> Path:
    """The repository's files as a clone has them (tracked and new, not ignored), without build output."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file() and not name.startswith("assignments/dist/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def make_alice(checkout: Path) -> None:
    nb = notebook(checkout / "assignments" / "dist" / "style" / "autograder" / "style.ipynb", ALICE)
    (checkout / "submissions").mkdir(exist_ok=True)
    nbformat.write(nb, checkout / "submissions" / "alice.ipynb")


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    """Run the section's commands in a fresh copy; {command: completed process}."""
    checkout = fresh_copy(tmp_path_factory.mktemp("checkout"))
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LECTUREKIT_")}
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""), PYTHONPATH=str(checkout), LECTUREKIT_TORCH_INDEX="",
               OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = {}
    for command in readme_commands():
        if "submissions/alice.ipynb" in command and not (checkout / "submissions" / "alice.ipynb").exists():
            make_alice(checkout)
        run = command.replace("pip install ", "pip install --dry-run ", 1) if command.startswith("pip install") \
            else command
        done[command] = subprocess.run(["bash", "-c", run], cwd=checkout, env=env, capture_output=True, text=True)
        assert done[command].returncode == 0, (f"README command failed: {command}\n{done[command].stdout[-3000:]}\n"
                                               f"{done[command].stderr[-5000:]}")
    return checkout, done


def test_the_section_has_the_commands_an_instructor_needs():
    commands = readme_commands()
    assert commands[0] == 'pip install -e ".[instructor]"'
    assert any(c.startswith("python assignments/build.py") for c in commands)
    assert any("otter run" in c for c in commands) and any("assignments/gradescope.py" in c for c in commands)
    text = (ROOT / "README.md").read_text()
    assert 'pip install "lecturekit[instructor]"' not in text


def test_install_resolves(followed):
    checkout, done = followed
    out = done['pip install -e ".[instructor]"'].stdout
    assert "Would install" in out and "lecturekit-0.1.0" in out or "Requirement already satisfied" in out


def test_build_check(followed):
    checkout, done = followed
    dist = checkout / "assignments" / "dist"
    for name in ("network_visualization", "attribution", "style"):
        assert (dist / f"{name}-autograder.zip").is_file() and (dist / f"{name}-student.zip").is_file()
    build_out = next(p.stdout for c, p in done.items() if c.startswith("python assignments/build.py"))
    assert build_out.count("solution graded: full marks") == 3
    assert len(re.findall(r"untouched student version scores (\d+(?:\.\d+)?) of", build_out)) == 3


def _scores(results: dict) -> dict:
    return {t["name"]: t["score"] for t in results["tests"] if "max_score" in t}


def test_otter_run_grades_alice(followed):
    """Local grading gives alice the score tests/assignment_students.py lists for her."""
    checkout, done = followed
    results = json.loads((checkout / "results" / "results.json").read_text())
    assert _scores(results) == ALICE_POINTS


def test_gradescope_grades_alice_offline(followed):
    """The zip as Gradescope runs it (setup.sh in a fresh venv, run_autograder without network) gives
    the same marks as local grading."""
    checkout, done = followed
    out = next(p.stdout for c, p in done.items() if "assignments/gradescope.py" in c)
    marks = dict(re.findall(r"^\s*(q\d): (\S+) / \S+$", out, flags=re.M))
    assert {q: float(v) for q, v in marks.items()} == ALICE_POINTS, out
    assert re.search(rf"^total: {sum(ALICE_POINTS.values()):g} / 10$", out, flags=re.M), out
