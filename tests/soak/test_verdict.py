"""The soak's verdict on made-up runs: what fails a run, and what does not."""

from __future__ import annotations

import base64
import math
from collections import Counter
from dataclasses import replace

import pytest

from soak.gateway import FUZZER, CameraSpec, Sample
from soak.harness import (
    LoadStats,
    LogFindings,
    Phases,
    SoakOptions,
    SoakResult,
    growth_over_last_half,
    judge,
    read_log,
    table,
)
from soak.viewers import ViewerClass

CAMERAS = [
    CameraSpec("good-hama-0", "hama", "http://127.0.0.1:1", "admin", "cam-secret-0", True),
    CameraSpec("bad-foscam-1", "foscam", "http://127.0.0.1:2", "admin", "cam-secret-1", False),
]


def samples(rss: list[float], *, fds: int = 30, threads: int = 8) -> list[Sample]:
    return [Sample(float(i), mb, fds, threads, i * 0.5) for i, mb in enumerate(rss)]


def healthy_run(**changes: object) -> SoakResult:
    """A run that passes: flat memory, idle levels back to the baseline, smooth viewers."""
    during = samples([200.0 + (i % 3) * 0.5 for i in range(120)])
    phases = Phases(load_start=0.0, load_end=119.0, baseline=during[0], end=during[0])
    viewers = [
        ViewerClass(camera.name, "main", "tcp", camera.well_behaved, sessions=5, frames=500)
        for camera in CAMERAS
    ]
    for viewer in viewers:
        viewer.worst_gap = 0.4
    result = SoakResult(
        options=SoakOptions(),
        cameras=CAMERAS,
        phases=phases,
        samples=during,
        load=LoadStats(viewers=viewers),
        log=LogFindings(lines=10),
        faults_applied=Counter(),
        exit_code=0,
    )
    return replace(result, **changes)  # type: ignore[arg-type]


def test_a_run_with_flat_memory_and_smooth_viewers_passes() -> None:
    result = healthy_run()

    assert judge(result) == []
    assert "verdict: PASS" in table(result)


def test_memory_that_keeps_growing_fails_memory_that_levelled_off_does_not() -> None:
    ramp = samples([200.0 + 0.2 * i for i in range(120)])  # +24 MB, still climbing
    levelled = samples([200.0 + min(i, 40) * 0.5 for i in range(120)])  # +20 MB, then flat

    assert growth_over_last_half(ramp) == pytest.approx(100 * 0.2 * 59.5 / (200 + 0.2 * 59.5))
    assert growth_over_last_half(levelled) == pytest.approx(0.0, abs=0.01)
    hour = SoakOptions(minutes=60)
    failures = judge(healthy_run(samples=ramp, options=hour))
    assert [f for f in failures if f.startswith("RSS grew")] == [
        "RSS grew 5.6 % over the last half of the load (limit 5 %)"
    ]
    assert judge(healthy_run(samples=levelled, options=hour)) == []


def test_a_run_too_short_to_level_off_reports_its_growth_unjudged() -> None:
    ramp = samples([200.0 + 0.2 * i for i in range(120)])
    short = healthy_run(samples=ramp, options=SoakOptions(minutes=2))

    assert judge(short) == []
    assert "+5.6 % (not judged: too short to level off)" in table(short)


def test_noise_in_the_samples_is_not_growth() -> None:
    noisy = samples([200.0 + 8.0 * math.sin(i * 1.7) for i in range(120)])

    growth = growth_over_last_half(noisy)

    assert growth is not None
    assert abs(growth) < 2.0


def test_a_gap_or_a_refusal_fails_only_for_a_well_behaved_camera() -> None:
    result = healthy_run()
    good, bad = result.load.viewers
    bad.worst_gap, bad.failed = 30.0, 4
    assert judge(result) == []

    good.worst_gap = 2.5
    good.failed = 1
    good.errors["PLAY 503"] += 1

    assert judge(result) == [
        "viewer good-hama-0/main/tcp: a 2.5 s gap",
        "viewer good-hama-0/main/tcp: 1 session(s) never played (PLAY 503 x1)",
    ]


def test_fds_or_threads_left_above_the_baseline_fail() -> None:
    result = healthy_run()
    baseline = result.phases.baseline
    assert baseline is not None
    result.phases.end = replace(baseline, fds=baseline.fds + 2, threads=baseline.threads + 1)

    assert judge(result) == [
        "fds: 32 once idle again, above the 30 of the baseline",
        "threads: 9 once idle again, above the 8 of the baseline",
    ]


def test_a_crash_and_a_hang_at_stop_fail() -> None:
    assert judge(healthy_run(exited_during_run=True, exit_code=-11)) == [
        "the gateway exited by itself (exit code -11)"
    ]
    assert judge(healthy_run(exit_code=None)) == [
        "the gateway did not stop on SIGTERM (exit code None) when stopped"
    ]


def test_the_log_is_read_for_tracebacks_and_credentials() -> None:
    token = base64.b64encode(f"{FUZZER.name}:{FUZZER.password}".encode()).decode()
    text = "\n".join(
        [
            "2026-01-01 10:00:00,000 INFO    bridge.app: gateway started",
            "2026-01-01 10:00:01,000 ERROR   bridge.rtsp.server: rtsp: failed",
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in <module>',
            f"2026-01-01 10:00:02,000 INFO    bridge.rtsp.server: bad line 'Authorization {token}'",
            "2026-01-01 10:00:03,000 WARNING bridge.media: cam-secret-1 refused",
        ]
    )

    findings = read_log(text, CAMERAS)

    assert findings.tracebacks == 1
    assert findings.first_traceback.startswith("2026-01-01 10:00:01,000 ERROR")
    assert findings.leaked == ["Basic credential of soak-fuzzer", "password of camera bad-foscam-1"]
    assert findings.by_level == {"INFO": 2, "ERROR": 1, "WARNING": 1}
    failures = judge(healthy_run(log=findings))
    assert failures == [
        "1 traceback(s) in the gateway log",
        "credentials in the gateway log: Basic credential of soak-fuzzer, "
        "password of camera bad-foscam-1",
    ]
