"""The soak CI runs: two minutes of churning viewers, ONVIF clients, fuzzers and misbehaving
cameras against the gateway as its own process (``run.py`` runs longer ones by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from soak.harness import SoakOptions, judge, soak, table

CI_MINUTES = 2.0


@pytest.mark.timeout(600)
async def test_two_minutes_of_faults_and_load_leave_the_gateway_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await soak(SoakOptions(minutes=CI_MINUTES, workdir=tmp_path / "soak"))
    summary = table(result)
    with capsys.disabled():
        print(f"\n{summary}")

    assert not judge(result), summary
