"""What a VMS sets over ONVIF survives a restart of the gateway: media profiles, encoder
settings and the presets the gateway keeps for a head that cannot list its own, made with
onvif-zeep-async against a gateway with a state file in front of the hama emulator, then read
back (and streamed, and moved to) through a new gateway on the same file."""

from __future__ import annotations

import logging
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, StartGateway, StartSim
from gateway_devices import Device
from helpers import probe_first_video_frames, with_userinfo

from bridge.cameras.base import PtzVector
from bridge.errors import CameraError
from bridge.media.source import CameraMedia
from bridge.onvif.context import AUDIO_SOURCE_CONFIG, PTZ_CONFIG, VIDEO_SOURCE_CONFIG
from bridge.onvif.soap import Service
from bridge.simulator.core import RunningSimulator, SimOptions
from bridge.simulator.hama import HamaSimulator

UNICAST = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
STORED_AT = PtzVector(0.3, -0.2)


async def what_a_vms_reads(device: Device) -> dict[str, Any]:
    """The profiles (token, name, configurations), the main encoder and the presets, as a
    new client of the device reads them."""
    client = device.client()
    media = await device.service(Service.MEDIA, client)
    ptz = await device.service(Service.PTZ, client)
    profiles = {}
    for profile in await media.GetProfiles():
        held = {
            kind: getattr(profile, f"{kind}Configuration").token
            for kind in ("VideoSource", "VideoEncoder", "AudioSource", "AudioEncoder", "PTZ")
            if getattr(profile, f"{kind}Configuration") is not None
        }
        profiles[profile.token] = (profile.Name, held)
    main = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "main"})
    presets = await ptz.GetPresets({"ProfileToken": "main"})
    return {
        "profiles": profiles,
        "main": (main.Resolution.Width, main.Resolution.Height, main.RateControl.BitrateLimit),
        "presets": sorted((p.token, p.Name) for p in presets),
    }


async def main_stream_size(device: Device) -> tuple[int, int]:
    media = await device.service(Service.MEDIA)
    uri = (await media.GetStreamUri({"ProfileToken": "main", "StreamSetup": UNICAST})).Uri
    stream = await probe_first_video_frames(with_userinfo(uri, GATEWAY_USER, GATEWAY_PASSWORD))
    return stream["width"], stream["height"]


async def start_hama(start_sim: StartSim) -> RunningSimulator:
    return await start_sim(HamaSimulator(SimOptions()))


async def test_profiles_encoders_and_presets_survive_a_restart(
    start_sim: StartSim, start_gateway: StartGateway, tmp_path: Path
) -> None:
    sim = await start_hama(start_sim)
    state_file = tmp_path / "bridge.state.yaml"
    first = Device(sim, await start_gateway(sim, state_file=state_file))
    media = await first.service(Service.MEDIA)
    await media.CreateProfile({"Name": "Frigate detect", "Token": "frigate"})
    for kind, token in (
        ("VideoSource", VIDEO_SOURCE_CONFIG),
        ("VideoEncoder", "sub"),
        ("AudioSource", AUDIO_SOURCE_CONFIG),
        ("PTZ", PTZ_CONFIG),
    ):
        await getattr(media, f"Add{kind}Configuration")(
            {"ProfileToken": "frigate", "ConfigurationToken": token}
        )
    await media.RemoveAudioEncoderConfiguration({"ProfileToken": "main"})  # a fixed one
    main = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "main"})
    assert (main.Resolution.Width, main.Resolution.Height) == (640, 480)
    main.Resolution.Width, main.Resolution.Height = 320, 240
    main.RateControl.BitrateLimit = 700
    await media.SetVideoEncoderConfiguration({"Configuration": main, "ForcePersistence": True})
    ptz = await first.service(Service.PTZ)
    sim.camera.state.ptz.go_to(STORED_AT)
    token = await ptz.SetPreset({"ProfileToken": "main", "PresetName": "home"})
    before = await what_a_vms_reads(first)
    assert before["profiles"]["frigate"] == (
        "Frigate detect",
        {
            "VideoSource": VIDEO_SOURCE_CONFIG,
            "VideoEncoder": "sub",
            "AudioSource": "audio_source_config",
            "PTZ": PTZ_CONFIG,
        },
    )
    assert "AudioEncoder" not in before["profiles"]["main"][1]
    assert before["main"] == (320, 240, 700)
    assert before["presets"] == [(token, "home")]
    await first.close()
    await first.gateway.stop()
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    sim.camera.state.ptz.go_to(PtzVector(-0.5, 0.4))  # moved by hand while it was down
    second = Device(sim, await start_gateway(sim, state_file=state_file))
    try:
        assert await what_a_vms_reads(second) == before
        ptz = await second.service(Service.PTZ)
        await ptz.GotoPreset({"ProfileToken": "main", "PresetToken": token})
        head = sim.camera.state.ptz.position()
        assert (head.pan, head.tilt) == pytest.approx((STORED_AT.pan, STORED_AT.tilt), abs=0.05)
        assert await main_stream_size(second) == (320, 240)
    finally:
        await second.close()


async def test_a_hostile_or_stale_state_file_loses_only_what_does_not_fit(
    start_sim: StartSim,
    start_gateway: StartGateway,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = await start_hama(start_sim)
    state_file = tmp_path / "bridge.state.yaml"
    record = {
        "name": "hama",  # demo_config names the camera by its dialect; no MAC: found by name
        "endpoint": f"urn:uuid:{uuid.uuid4()}",
        "profiles": [
            {"token": "huge", "name": "x" * 100_000},
            {"token": "bogus", "name": "b", "configurations": {"Telepathy": "t"}},
            {
                "token": "kept",
                "name": "Kept",
                # the camera has no speaker (any more): no audio output configuration
                "configurations": {"VideoEncoder": "sub", "AudioOutput": "audio_output_config"},
            },
        ],
        "encoders": [{"profile": "main", "width": 4000, "height": 3000}],
        "presets": [{"token": "9", "name": "beyond"}, {"token": "2", "name": "door"}],
    }
    state_file.write_text(yaml.safe_dump({"devices": [record]}), encoding="utf-8")
    caplog.set_level(logging.WARNING)
    device = Device(sim, await start_gateway(sim, state_file=state_file))
    try:
        seen = await what_a_vms_reads(device)
        assert seen["profiles"]["kept"] == ("Kept", {"VideoEncoder": "sub"})
        assert {"huge", "bogus"}.isdisjoint(seen["profiles"])
        assert seen["main"][:2] == (640, 480)
        assert seen["presets"] == [("2", "door")]
        assert await main_stream_size(device) == (640, 480)
    finally:
        await device.close()
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    for part in ("'huge'", "'bogus'", "no AudioOutput", "4000x3000", "preset 9"):
        assert len([line for line in dropped if part in line]) == 1, (part, dropped)
    assert all(line.startswith("camera hama: state file: dropped") for line in dropped)
    assert len(dropped) == 5
    assert "x" * 100 not in caplog.text


async def test_encoders_wait_in_the_file_while_the_cameras_picture_size_is_unknown(
    start_sim: StartSim,
    start_gateway: StartGateway,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A camera that shows no picture at start (no size reported, its snapshot failing)
    cannot have its kept encoders checked: they are neither set nor dropped, and a save made
    meanwhile (a client creating a profile) keeps them in the file for the next start."""
    sim = await start_hama(start_sim)
    state_file = tmp_path / "bridge.state.yaml"
    encoder = {"profile": "main", "width": 320, "height": 240, "bitrate": 700_000}
    record = {"name": "hama", "endpoint": f"urn:uuid:{uuid.uuid4()}", "encoders": [encoder]}
    state_file.write_text(yaml.safe_dump({"devices": [record]}), encoding="utf-8")

    async def no_picture(self: CameraMedia) -> bytes:
        raise CameraError("no picture", camera="hama")

    monkeypatch.setattr(CameraMedia, "camera_size", lambda self: None)
    monkeypatch.setattr(CameraMedia, "snapshot", no_picture)
    caplog.set_level(logging.WARNING)
    device = Device(sim, await start_gateway(sim, state_file=state_file))
    try:
        media = await device.service(Service.MEDIA)
        await media.CreateProfile({"Name": "Later"})
    finally:
        await device.close()
    assert "camera hama: encoder settings from the state file wait" in caplog.text
    assert "dropped" not in caplog.text
    (saved,) = yaml.safe_load(state_file.read_text(encoding="utf-8"))["devices"]
    assert [p["name"] for p in saved["profiles"]] == ["Later"]
    assert [(e["profile"], e["width"], e["height"], e["bitrate"]) for e in saved["encoders"]] == [
        ("main", 320, 240, 700_000)
    ]
