"""The gallery as a reader gets it: ``python -m lecturekit gallery --quick ...`` with MPLBACKEND=Agg
(as tasks.sh sets it), then each page is checked: it has its figures, and every figure passes
``plotting.audit`` (no NaN or flat image panel, no title wider than its axes).

The audit runs inside each notebook's kernel: an IPython startup file in a private IPYTHONDIR
calls ``plotting.install_audit``, which appends one JSON line per rendered figure (the kernel's
start is marked, so the lines split by notebook in the order rendered).

Rendering all 19 notebooks takes 5 minutes and more on two cores; by default a representative
subset is rendered (filter tiles, signed filter responses, occlusion maps centred on the
unoccluded probability, widgets, images in the model's colour space, attention overlays), about a
minute. LECTUREKIT_GALLERY_ALL=1 renders every notebook.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: figures each page shows at least, quick mode, offline (the embedded teaching model)
FIGURES = {"00_tour": 4, "01_first_layer_filters": 5, "02_intermediate_layers": 5, "03_last_layer": 3,
           "04_max_activating_patches": 3, "05_occlusion": 3, "06_saliency": 5, "07_guided_backprop": 3,
           "08_cam_gradcam": 4, "09_sanity_checks": 4, "10_class_visualization": 7, "11_fooling_images": 3,
           "12_deepdream": 2, "13_feature_inversion": 1, "14_texture_synthesis": 4, "15_style_transfer": 6,
           "16_fast_style_transfer": 4, "17_vit_attention": 5, "18_data_augmentation": 4,
           "19_explorer": 4}
SUBSET = ["01_first_layer_filters", "05_occlusion", "13_feature_inversion", "17_vit_attention"]
STARTUP = """
import json, os
report = os.environ["LECTUREKIT_AUDIT_REPORT"]
with open(report, "a", encoding="utf-8") as f:
    f.write(json.dumps({"kernel": True}) + "\\n")
from lecturekit import plotting
plotting.install_audit(report)
"""


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    names = list(FIGURES) if os.environ.get("LECTUREKIT_GALLERY_ALL") == "1" else SUBSET
    work = tmp_path_factory.mktemp("gallery")
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-audit.py").write_text(STARTUP)
    report = work / "audit.jsonl"
    env = {**os.environ, "MPLBACKEND": "Agg", "IPYTHONDIR": str(work / "ipython"),
           "LECTUREKIT_AUDIT_REPORT": str(report), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "lecturekit", "gallery", "--quick", "--out", str(work / "out"), *names],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    audits: list[list[dict]] = []
    for line in report.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("kernel"):
            audits.append([])
        else:
            audits[-1].append(entry)
    assert len(audits) == len(names), f"{len(audits)} kernels started for {len(names)} notebooks"
    return {name: ((work / "out" / f"{name}.html").read_text(encoding="utf-8"), audit)
            for name, audit in zip(names, audits)}


def test_every_page_has_its_figures(gallery):
    for name, (page, audit) in gallery.items():
        shown = page.count('src="data:image/png;base64')
        assert shown >= FIGURES[name], f"{name}: {shown} figures on the page, expected at least {FIGURES[name]}"
        assert len(audit) >= FIGURES[name], f"{name}: only {len(audit)} figures were rendered"


def test_every_figure_passes_the_audit(gallery):
    problems = [f"{name}, figure '{entry['title']}': {p}"
                for name, (_, audit) in gallery.items() for entry in audit for p in entry["problems"]]
    assert not problems, "\n".join(problems)
