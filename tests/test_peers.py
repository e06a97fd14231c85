"""benchmarks/peers.py runs end to end (--quick: small sizes, one round) where the peers are installed."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = [m for m in ("captum", "pytorch_grad_cam", "lucent") if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"the peers are not installed ({', '.join(MISSING)}): pip install .[peers]")
def test_peers_benchmark_quick_run():
    env = dict(os.environ, PYTHONPATH=str(ROOT), LECTUREKIT_OFFLINE="1", LECTUREKIT_DEVICE="cpu")
    out = subprocess.run([sys.executable, "-W", "ignore", str(ROOT / "benchmarks" / "peers.py"), "--quick"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "x** |" in line]
    peers = {row.split(" | ")[1] for row in rows}
    assert {"captum Saliency", "pytorch-grad-cam GradCAM", "lucent render_vis (defaults)",
            "PyTorch neural-style tutorial", "pytorch/examples TransformerNet"} <= peers
    assert "L-BFGS on the tutorial's loss" in out.stdout
