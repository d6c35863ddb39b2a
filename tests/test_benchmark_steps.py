"""``python -m benchmarks.steps`` runs and names every step it times (no timing is asserted:
a CI machine's numbers mean nothing; this keeps the script working as the pipeline changes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = (
    "transcode",
    "decode",
    "convert to 4:2:0",
    "encode and the rest",
    "emulator, still",
    "emulator, panning",
)


def test_every_step_is_timed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.steps", "--pictures", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    for step in STEPS:
        assert any(re.fullmatch(rf"  {re.escape(step)} +\d+\.\d\d", line) for line in lines), step
    assert re.search(r"lowres=1: \d+\.\d\dx faster", done.stdout)
