"""Build the assignments: student versions, solutions and Gradescope autograder zips.

    python assignments/build.py                      # all of them, into assignments/dist/
    python assignments/build.py style --out ~/course/a3
    python assignments/build.py --check              # also grade each untouched student version

For each master notebook ``assignments/<name>.ipynb`` (otter-grader's notebook format),
``otter assign`` writes ``<out>/<name>/student/`` (the notebook to hand out, with its public
tests in ``tests/``) and ``<out>/<name>/autograder/`` (the solution notebook, all tests, and
the zip to upload to Gradescope), and grades the solution notebook with the autograder: the
build fails unless it scores full marks. This script then copies the autograder zip to
``<out>/<name>-autograder.zip``, made ready for Gradescope (see ``gradescope_zip``), and zips the
student folder to ``<out>/<name>-student.zip``.
With ``--check`` it also grades the untouched student version (``otter run``), which must score
below half: a test that an empty answer passes is a broken test.

Grading runs every notebook top to bottom offline in quick mode (the tests use the embedded
teaching model only, so they give the same marks in either mode).

The tests of each assignment use ``grading_checks.py`` (handed out with the notebook: the checks
that say what is wrong, and the table of lecturekit functions switched off while a student's
function is graded) and ``grading_reference.py`` (in the autograder only: the answers the hidden
tests compare with).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAMES = ["network_visualization", "attribution", "style"]
#: Offline and quick while grading; one thread per process: the models are small, and
#: several threads on a few cores cost more than they save.
GRADING_ENV = {"LECTUREKIT_OFFLINE": "1", "LECTUREKIT_QUICK": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
#: The torch the course is tested with (tasks.sh installs the same); Gradescope gets its CPU build.
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
#: What Gradescope runs (setup.sh once, run_autograder for each submission), in place of otter's
#: own, which installs Miniforge and a conda environment.
GRADESCOPE = HERE / "gradescope"
GRADESCOPE_FILES = ["setup.sh", "run_autograder", "run_otter.py"]


def _otter() -> list[str]:
    otter = Path(sys.executable).with_name("otter")
    if not otter.is_file():
        raise FileNotFoundError("otter-grader is not installed; from the repository's folder: "
                                "pip install -e \".[instructor]\"")
    return [str(otter)]


def _env() -> dict[str, str]:
    return {**os.environ, **GRADING_ENV}


def lecturekit_wheel(dest: Path) -> Path:
    """Build the lecturekit wheel of this checkout into ``dest`` (what the autograders carry)."""
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                          str(dest), str(ROOT)], capture_output=True, text=True)
    wheels = sorted(Path(dest).glob("lecturekit-*.whl"))
    if run.returncode != 0 or not wheels:
        raise RuntimeError(f"building the lecturekit wheel failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}")
    return wheels[-1]


def requirements(wheel: Path) -> str:
    """The autograder's requirements.txt: the pinned torch, the lecturekit wheel beside it in the
    zip (its dependencies come from PyPI) and the otter-grader this build ran with."""
    return "\n".join([*TORCH_PINS, f"./{wheel.name}", f"otter-grader[grading]=={version('otter-grader')}"]) + "\n"


def gradescope_zip(otter_zip: Path, out: Path, wheel: Path) -> Path:
    """Copy otter's autograder zip to ``out`` for Gradescope: its tests, configuration and grading
    files, with this project's setup.sh, run_autograder and run_otter.py in place of otter's (and no
    environment.yml), the lecturekit wheel and a requirements.txt that installs it with CPU torch."""
    replaced = {*GRADESCOPE_FILES, "environment.yml", "requirements.txt"}
    with zipfile.ZipFile(otter_zip) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename not in replaced:
                dst.writestr(item, src.read(item))
        for name in GRADESCOPE_FILES:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = ((GRADESCOPE / name).stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, (GRADESCOPE / name).read_bytes())
        dst.writestr("requirements.txt", requirements(wheel))
        dst.write(wheel, wheel.name)
    return out


def assign(name: str, out: Path, wheel: Path) -> Path:
    """``otter assign`` one master notebook into ``out/name``; returns that folder. Raises when the
    solution does not score full marks (otter's own check)."""
    master = HERE / f"{name}.ipynb"
    if not master.is_file():
        raise FileNotFoundError(f"no assignment {name!r}. Valid: {', '.join(NAMES)}")
    result = out / name
    run = subprocess.run([*_otter(), "assign", "--no-pdfs", str(master), str(result)], env=_env(),
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"otter assign {name} failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}")
    zips = sorted((result / "autograder").glob("*-autograder_*.zip"))
    gradescope_zip(zips[-1], out / f"{name}-autograder.zip", wheel)
    shutil.make_archive(str(out / f"{name}-student"), "zip", result / "student")
    return result


def grade(notebook: Path, autograder_zip: Path) -> tuple[float, float]:
    """``otter run`` one notebook against an autograder zip: (points, possible)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run([*_otter(), "run", "--no-logo", "-a", str(autograder_zip), "-o", tmp, str(notebook)],
                             env=_env(), capture_output=True, text=True)
        results = Path(tmp) / "results.json"
        if not results.is_file():
            raise RuntimeError(f"otter run {notebook} wrote no results:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        tests = [t for t in json.loads(results.read_text())["tests"] if "max_score" in t]    # one per question
    return sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)


def build(names=NAMES, out: Path = HERE / "dist", check: bool = False, log=print) -> dict[str, dict]:
    """Build each assignment into ``out``; with ``check``, grade its untouched student version.
    Returns {name: {"assign_s": seconds, "student": (points, possible), "grade_s": seconds}}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        wheel = lecturekit_wheel(Path(tmp))
        for name in names:
            start = time.perf_counter()
            result = assign(name, out, wheel)
            report[name] = {"assign_s": round(time.perf_counter() - start, 1)}
            log(f"{name}: built in {report[name]['assign_s']} s (solution graded: full marks) -> {result}")
            if check:
                start = time.perf_counter()
                points, possible = grade(result / "student" / f"{name}.ipynb", out / f"{name}-autograder.zip")
                report[name].update(student=(points, possible), grade_s=round(time.perf_counter() - start, 1))
                log(f"{name}: untouched student version scores {points:g} of {possible:g} "
                    f"(graded in {report[name]['grade_s']} s)")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"assignments to build (default: all: {', '.join(NAMES)})")
    parser.add_argument("--out", default=str(HERE / "dist"), help="output folder (default: assignments/dist)")
    parser.add_argument("--check", action="store_true", help="also grade the untouched student versions")
    args = parser.parse_args(argv)
    bad = [n for n in args.names if n not in NAMES]
    if bad:
        print(f"unknown assignment(s): {', '.join(bad)}. Valid: {', '.join(NAMES)}", file=sys.stderr)
        return 2
    try:
        report = build(args.names or NAMES, Path(args.out), check=args.check)
    except (FileNotFoundError, RuntimeError) as err:
        print(err, file=sys.stderr)
        return 1
    too_easy = [n for n, r in report.items() if "student" in r and r["student"][0] >= r["student"][1] / 2]
    for name in too_easy:
        print(f"{name}: the untouched student version scores half or more: a test passes without an answer",
              file=sys.stderr)
    return 1 if too_easy else 0


if __name__ == "__main__":
    sys.exit(main())
