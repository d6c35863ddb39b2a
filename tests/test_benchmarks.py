"""``python -m benchmarks --quick``: the benchmark runs end to end and prints every row.

No timing is asserted (a CI machine's numbers mean nothing). What is checked is what the issue
asks the benchmark to show: every scenario measured against every reference, in one table, and
every target given a verdict from data.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = (
    "gateway",
    "paced PyAV loop",
    "PyAV loop flat out",
    "ffmpeg CLI ultrafast",
    "ffmpeg CLI superfast",
)
EXPECTED_ROWS = {
    *(
        (scenario, reference)
        for scenario in ("VGA x1", "VGA x10", "VGA x20", "720p x4")
        for reference in REFERENCES
    ),
    ("VGA x30", "gateway"),
    ("VGA x10, main + sub", "gateway, main + sub"),
    ("VGA x10, main + sub", "gateway, main only"),
    ("VGA x10, main + sub", "paced PyAV loop, main + sub from one decode"),
    ("VGA x10, main + sub", "paced PyAV loop"),
}


def _rows(table: str) -> list[list[str]]:
    """The body rows of a Markdown table."""
    lines = [line for line in table.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.timeout(120)
def test_quick_run_prints_every_row_with_a_verdict() -> None:
    # From the checkout (benchmarks/ is not installed); `python -m` puts the cwd on the path.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measurements, targets = done.stdout.split("\n\n| target")
    rows = _rows(measurements[measurements.index("| scenario") :])
    assert {(row[0], row[2]) for row in rows} == EXPECTED_ROWS
    for row in rows:
        assert float(row[4].split()[0]) > 0, row  # frames/s: frames flowed
        # CPU per frame. The ffmpeg CLI's is read from /proc in clock ticks (10 ms): a quick
        # run's half second of pictures (a few ms each) can read as 0.
        cpu = float(row[3].split()[0])
        assert cpu >= 0 if row[2].startswith("ffmpeg CLI") else cpu > 0, row
    verdicts = _rows("| target" + targets)
    # 3 ratios for each of the 4 CPU scenarios; 30 cameras: drops, latency; main + sub.
    assert len(verdicts) == 4 * 3 + 2 + 1
    # "no data": a ratio to a reference that measured nothing, as the ffmpeg CLI can in a
    # quick run (see above).
    assert {row[-1] for row in verdicts} <= {"pass", "FAIL", "reported", "no data"}
    # --quick caps every scenario at one camera, and the 30-camera target says so.
    assert next(row for row in verdicts if "no dropped" in row[0])[2].startswith("1 camera")
