"""``bridge benchmark`` at a tiny scale: it runs end to end and prints its JSON document."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


# The motion comparison adds four runs (each with its joins and the release after it).
@pytest.mark.timeout(200)
def test_benchmark_prints_machine_readable_results() -> None:
    command = [
        *(sys.executable, "-m", "bridge", "benchmark"),
        *("--size", "320x240:1", "--viewers", "2", "--seconds", "1"),
        *("--baseline-seconds", "0.3", "--no-viewer-scaling"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr

    result = json.loads(done.stdout)
    assert {"machine", "settings", "sizes", "targets"} <= result.keys()
    assert result["machine"]["nproc"] >= 1
    (size,) = result["sizes"]
    assert size["size"] == "320x240"
    assert {"pyav_1_thread", "pyav_2_threads", "ffmpeg_cli"} <= size["baselines"].keys()
    (run,) = size["scenarios"]
    assert (run["cameras"], run["viewers_per_camera"]) == (1, 2)
    assert run["frames"]["viewers_received"] > 0
    assert run["frames"]["viewer_errors"] == []
    assert {"added_latency_ms", "first_frame_ms", "gateway_cpu", "peak_rss_mb"} <= run.keys()
    assert run["gateway_cpu"]["vs_pyav_1_thread"] is not None
    # Motion detection: its loop beside the transcoding loop, and the gateway without and
    # with the camera's detector running (it analyses pictures only in the runs with it).
    motion = size["motion_detection"]
    assert motion["ms_per_picture"]["reduced_decode"]["pictures"] > 0
    assert motion["ms_per_picture"]["full_size_decode"]["pictures"] > 0
    assert motion["percent_of_one_core_per_camera"] > 0
    assert motion["transcode_percent_of_one_core_per_camera"] > 0
    runs = motion["in_gateway"]["runs"]
    assert [r["motion_detection"] for r in runs] == [False, True, True, False]
    analysed = [r["motion_pictures_analysed_per_s"] for r in runs]
    assert analysed[0] == analysed[3] == 0
    assert min(analysed[1:3]) > 0
    # Once its viewers left, the camera was released: nothing streams from the emulator.
    assert run["idle_after"]["emulator_open_streams"] == 0
    assert run["idle_after"]["cameras_streaming"] == 0
    for target in result["targets"]:
        assert {"name", "target", "value", "pass"} <= target.keys()
        assert target["pass"] in (True, False, None)
