"""Grade a submission with an autograder zip the way Gradescope does, on this machine.

    python assignments/gradescope.py assignments/dist/style-autograder.zip submissions/alice.ipynb

Gradescope unpacks the zip into /autograder/source, runs ``setup.sh`` once (as root, with network
access) to build its image, then for each submission puts the student's files into
/autograder/submission, runs ``run_autograder`` and reads /autograder/results/results.json. This
does the same in a folder of its own (``--dir``; a temporary one by default) in place of
/autograder: ``setup.sh`` makes a fresh virtual environment there (from the Python named by
``--python``, without this environment's packages) and ``run_autograder`` grades with no network
(its requests go to a proxy that does not exist), so a test that needed a download would fail.
Prints each question's score and the total; exits 1 when no results were written.

With ``--dir`` kept from an earlier run (its venv/ exists), setup is skipped. ``--torch-index``
(by default ``$LECTUREKIT_TORCH_INDEX`` where set) overrides where setup.sh takes the CPU torch
wheels from; an empty value leaves it to pip's own configuration, for a machine with a local
package mirror and no access to PyTorch's index.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: Where run_autograder's requests for the network go: nothing listens there.
NO_NETWORK = "http://127.0.0.1:9"


def clean_env(autograder_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without what points into its own Python environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LECTUREKIT_", "PYTHON", "VIRTUAL_ENV", "CONDA", "JUPYTER", "OMP_", "MPL"))}
    own = [str(Path(sys.executable).parent), *([os.environ["VIRTUAL_ENV"]] if "VIRTUAL_ENV" in os.environ else [])]
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not any(p == o or p.startswith(o + os.sep) for o in own))
    env["LECTUREKIT_AUTOGRADER_DIR"] = str(autograder_dir)
    env.update(extra)
    return env


def place_submission(submission: Path, folder: Path) -> None:
    """Put a submission where Gradescope does: a notebook as it is, a zip unpacked."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if submission.suffix == ".zip":
        with zipfile.ZipFile(submission) as z:
            z.extractall(folder)
    elif submission.suffix == ".ipynb":
        shutil.copy(submission, folder)
    else:
        raise ValueError(f"a submission is a notebook (.ipynb) or the zip its export cell makes, not {submission.name}")


def setup(autograder_zip: Path, autograder_dir: Path, python: str, torch_index: str | None, log=print) -> None:
    """Unpack the zip into ``autograder_dir/source`` and run its setup.sh (skipped when the
    environment of an earlier run is there)."""
    if (autograder_dir / "venv" / "bin" / "python").is_file():
        log(f"setup: reusing {autograder_dir / 'venv'}")
        return
    source = autograder_dir / "source"
    if source.exists():
        shutil.rmtree(source)
    with zipfile.ZipFile(autograder_zip) as z:
        z.extractall(source)
    extra = {"LECTUREKIT_PYTHON": python}
    if torch_index is not None:
        extra["LECTUREKIT_TORCH_INDEX"] = torch_index
    log("setup: running setup.sh (a fresh virtual environment; a few minutes)")
    run = subprocess.run(["bash", str(source / "setup.sh")], env=clean_env(autograder_dir, **extra),
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"setup.sh failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}")
    log(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "setup: done")


def run_autograder(autograder_dir: Path) -> dict:
    """Run run_autograder as Gradescope does (copied to the autograder folder, run from there),
    without network; returns results/results.json."""
    shutil.copy(autograder_dir / "source" / "run_autograder", autograder_dir / "run_autograder")
    results = autograder_dir / "results"
    if results.exists():
        shutil.rmtree(results)
    offline = {k: NO_NETWORK for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    run = subprocess.run(["bash", str(autograder_dir / "run_autograder")], cwd=autograder_dir,
                         env=clean_env(autograder_dir, no_proxy="", NO_PROXY="", **offline),
                         capture_output=True, text=True)
    if not (results / "results.json").is_file():
        raise RuntimeError(f"run_autograder wrote no results ({run.returncode}):\n{run.stdout[-3000:]}\n"
                           f"{run.stderr[-5000:]}")
    return json.loads((results / "results.json").read_text())


def grade(autograder_zip, submission, autograder_dir=None, python: str = "python3", torch_index: str | None = None,
          log=print) -> dict:
    """Set up (once) and grade one submission; returns Gradescope's results.json."""
    autograder_zip, submission = Path(autograder_zip).resolve(), Path(submission).resolve()
    for path in (autograder_zip, submission):
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(autograder_dir).resolve() if autograder_dir else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        setup(autograder_zip, folder, python, torch_index, log)
        place_submission(submission, folder / "submission")
        return run_autograder(folder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("autograder_zip")
    parser.add_argument("submission", help="a notebook, or the zip its export cell makes")
    parser.add_argument("--dir", help="the folder to use as /autograder (kept; default: a temporary one)")
    parser.add_argument("--python", default="python3", help="the Python 3.10+ setup.sh builds the environment with")
    parser.add_argument("--torch-index", default=os.environ.get("LECTUREKIT_TORCH_INDEX"),
                        help="where setup.sh gets the CPU torch wheels (empty: pip's configuration)")
    args = parser.parse_args(argv)
    try:
        results = grade(args.autograder_zip, args.submission, args.dir, args.python, args.torch_index)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(err, file=sys.stderr)
        return 1
    questions = [t for t in results["tests"] if "max_score" in t]
    for t in questions:
        print(f"{t['name']:>4}: {t['score']:g} / {t['max_score']:g}")
    print(f"total: {sum(t['score'] for t in questions):g} / {sum(t['max_score'] for t in questions):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
