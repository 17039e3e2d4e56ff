"""End to end: two real benchmark runs, one external contender made 2x slower between them
(same name, its work done twice), and `harness compare` reports exactly that contender."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELECTION = "n256-c1000 and (eager or module or logsoftmax_nll or ext) and not compiled"
ONCE = '''import torch.nn.functional as F

def ce(input, target, **kwargs):
    return F.cross_entropy(input, target, **kwargs)
'''
TWICE = '''import torch.nn.functional as F

def ce(input, target, **kwargs):
    F.cross_entropy(input, target, **kwargs)
    return F.cross_entropy(input, target, **kwargs)
'''


def _bench(tmp_path: Path, tag: str, source: str) -> Path:
    module_dir = tmp_path / tag
    module_dir.mkdir()
    (module_dir / "extmod.py").write_text(source)
    out = tmp_path / f"{tag}.json"
    # Outside xdist's variables: pytest-benchmark disables itself when it sees them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(PYTHONPATH=f"{module_dir}{os.pathsep}{ROOT}", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "harness", "bench", "--out", str(out),
           "--contender", "ext=extmod:ce", "--", "-k", SELECTION, "--bench-round-time", "0.15",
           "-p", "no:xdist"]
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    return out


def test_a_contender_made_2x_slower_is_the_one_reported(tmp_path):
    base = _bench(tmp_path, "base", ONCE)
    new = _bench(tmp_path, "new", TWICE)
    # A 25 % threshold: the 2x change must stand out; ordinary run-to-run drift of the
    # other contenders on a shared CI machine must not be mistaken for it.
    result = subprocess.run([sys.executable, "-m", "harness", "compare", str(base), str(new),
                             "--threshold", "25%", "--fail-on-regression"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    slower = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("slower")]
    assert sorted(slower) == ["ext", "ext"], result.stdout  # fwd and fwd_bwd
