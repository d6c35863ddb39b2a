"""DeviceIO (and the device service's relay operations) end to end: onvif-zeep-async against a
Gateway in front of each emulated camera, every relay call checked in the emulator's log."""

from __future__ import annotations

from typing import Any

import pytest
from gateway_devices import (
    DIALECTS,
    OpenDevice,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)

from bridge.cameras.base import Dialect

# The CGI request each dialect's camera must receive to switch relay 1 on and off.
RELAY_REQUESTS: dict[Dialect, tuple[str, dict[str, str], dict[str, str]]] = {
    Dialect.IPCAMCGI: ("/iocontrol.cgi", {"Trigger1": "1"}, {"Trigger1": "0"}),
    Dialect.OPENAPI: ("/output.cgi", {"action": "1:/"}, {"action": "1:\\"}),
    Dialect.FOSCAM: ("/decoder_control.cgi", {"command": "94"}, {"command": "95"}),
    Dialect.VAPIX2: ("/io/output.cgi", {"action": "1:/"}, {"action": "1:\\"}),
}
ACTIVE = {"RelayOutputToken": "1", "LogicalState": "active"}


def arguments(entry: dict[str, Any], keys: dict[str, str]) -> dict[str, str | None]:
    """The arguments named in ``keys`` of a logged CGI request."""
    return {key: entry["params"].get(key) for key in keys}


@pytest.mark.parametrize("dialect", list(RELAY_REQUESTS))
async def test_relay_calls_reach_the_camera_as_its_cgi(
    open_device: OpenDevice, dialect: Dialect
) -> None:
    device = await open_device(dialect)
    path, on, off = RELAY_REQUESTS[dialect]
    camera = device.client()
    await camera.update_xaddrs()
    devicemgmt = await camera.create_devicemgmt_service()
    deviceio = await camera.create_deviceio_service()

    relays = await devicemgmt.GetRelayOutputs()
    assert len(relays) == device.context.driver.capabilities.relay_outputs
    assert relays[0].token == "1"
    assert relays[0].Properties.Mode == "Bistable"
    assert [r.token for r in await deviceio.GetRelayOutputs()] == [r.token for r in relays]

    await device.clear_requests()
    # DeviceIO's own address and the device service's both switch it.
    await deviceio.SetRelayOutputState(ACTIVE)
    assert device.sim.camera.state.relays[0] is True
    await devicemgmt.SetRelayOutputState({**ACTIVE, "LogicalState": "inactive"})
    assert device.sim.camera.state.relays[0] is False
    switched = [arguments(entry, on) for entry in await device.requests(path)]
    assert [args for args in switched if any(args.values())] == [on, off]


async def test_unknown_relay_token_is_refused_before_reaching_the_camera(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.VAPIX2)
    path, on, _ = RELAY_REQUESTS[Dialect.VAPIX2]
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    refused = await fault_of(devicemgmt.SetRelayOutputState({**ACTIVE, "RelayOutputToken": "7"}))
    assert refused == ["InvalidArgVal", "RelayToken"]
    assert [arguments(entry, on) for entry in await device.requests(path)] == [
        {"action": None}  # the gateway only read the camera's outputs
    ]
    assert device.sim.camera.state.relays == [False]


async def test_camera_without_relays_lists_none(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.HAMA)
    assert device.context.driver.capabilities.relay_outputs == 0
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    assert await devicemgmt.GetRelayOutputs() == []
    assert await fault_of(devicemgmt.SetRelayOutputState(ACTIVE)) == [
        "InvalidArgVal",
        "RelayToken",
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_service_capabilities_and_digital_inputs_match_the_camera(
    open_device: OpenDevice, dialect: Dialect
) -> None:
    device = await open_device(dialect)
    driver = device.context.driver
    camera = device.client()
    await camera.update_xaddrs()
    deviceio = await camera.create_deviceio_service()
    capabilities = await deviceio.GetServiceCapabilities()
    inputs = await deviceio.GetDigitalInputs()
    assert capabilities.RelayOutputs == driver.capabilities.relay_outputs
    assert capabilities.DigitalInputs == driver.capabilities.digital_inputs
    assert capabilities.VideoSources == 1
    assert capabilities.AudioSources == (1 if device.context.media.has_audio else 0)
    assert capabilities.AudioOutputs == (0 if driver.capabilities.audio_out is None else 1)
    expected = await driver.digital_inputs() if driver.capabilities.digital_inputs else []
    assert [item.token for item in inputs] == [item.token for item in expected]
