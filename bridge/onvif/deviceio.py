"""ONVIF DeviceIO service (ver10): the camera's relay outputs, digital inputs and audio output.

DeviceIO's GetRelayOutputs and SetRelayOutputState reuse the device service's request
elements (``tds:GetRelayOutputs`` ...), so they arrive as device-service calls whichever path
they are posted to: :mod:`bridge.onvif.device` registers the relay handlers defined here.
The audio output (a camera that plays audio has one) is the one the media services' profiles
hold, with the same configuration: DeviceIO names it by the output's token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.errors import InvalidArgVal
from bridge.onvif.camera_calls import camera_call
from bridge.onvif.context import DeviceContext
from bridge.onvif.profiles import (
    audio_output_configuration,
    audio_output_options,
    audio_outputs,
    check_audio_output_change,
    has_audio_output,
    profile_store,
)
from bridge.onvif.soap import OnvifRequest, Operations, Service

# What the legacy relays are, as far as ONVIF can say: they hold the state they are set to.
_RELAY_PROPERTIES = {"Mode": "Bistable", "DelayTime": "PT0S", "IdleState": "open"}


def service_capabilities(device: DeviceContext) -> Mapping[str, Any]:
    """The counts a client can expect (GetServiceCapabilities, and GetServices embeds it)."""
    capabilities = device.driver.capabilities
    return {
        "VideoSources": 1,
        "VideoOutputs": 0,
        "AudioSources": 1 if device.media.has_audio else 0,
        "AudioOutputs": 1 if has_audio_output(device) else 0,
        "RelayOutputs": capabilities.relay_outputs,
        "DigitalInputs": capabilities.digital_inputs,
        "SerialPorts": 0,
        "DigitalInputOptions": False,
    }


async def get_relay_outputs(device: DeviceContext) -> Mapping[str, Any]:
    return {
        "RelayOutputs": [
            {"token": token, "Properties": _RELAY_PROPERTIES} for token in await _relays(device)
        ]
    }


async def set_relay_output_state(device: DeviceContext, params: Mapping[str, Any]) -> None:
    token = params["RelayOutputToken"]
    # The drivers disagree on how an unknown token fails (ValueError, UnsupportedOperation,
    # or a request the camera ignores), so it is checked against the camera's own list.
    if token not in await _relays(device):
        raise InvalidArgVal(f"No relay output {token[:64]!r}", subcode="RelayToken")
    with camera_call("switch the relay output"):
        await device.driver.set_relay(token, params["LogicalState"] == "active")


async def _relays(device: DeviceContext) -> list[str]:
    if device.driver.capabilities.relay_outputs <= 0:
        return []
    with camera_call("list its relay outputs"):
        return [relay.token for relay in await device.driver.relay_outputs()]


def register(operations: Operations, device: DeviceContext) -> None:
    """Add this service's handlers for one device."""

    async def get_service_capabilities(request: OnvifRequest) -> Mapping[str, Any]:
        return {"Capabilities": service_capabilities(device)}

    async def get_digital_inputs(request: OnvifRequest) -> Mapping[str, Any]:
        if device.driver.capabilities.digital_inputs <= 0:
            return {}
        with camera_call("list its digital inputs"):
            inputs = await device.driver.digital_inputs()
        return {"DigitalInputs": [{"token": item.token} for item in inputs]}

    store = profile_store(device)

    def check_output(params: Mapping[str, Any]) -> None:
        token = params["AudioOutputToken"]
        if token not in audio_outputs(store):
            raise InvalidArgVal(f"No audio output {token[:64]!r}", subcode="NoAudioOutput")

    async def get_audio_outputs(request: OnvifRequest) -> Mapping[str, Any]:
        return {"Token": audio_outputs(store)}

    async def get_audio_output_configuration(request: OnvifRequest) -> Mapping[str, Any]:
        check_output(request.params)
        return {"AudioOutputConfiguration": audio_output_configuration(store)}

    async def get_audio_output_configuration_options(request: OnvifRequest) -> Mapping[str, Any]:
        check_output(request.params)
        return {"AudioOutputOptions": audio_output_options()}

    async def set_audio_output_configuration(request: OnvifRequest) -> None:
        check_audio_output_change(store, request.params["Configuration"])

    handlers = {
        "GetServiceCapabilities": get_service_capabilities,
        "GetDigitalInputs": get_digital_inputs,
        "GetAudioOutputs": get_audio_outputs,
        "GetAudioOutputConfiguration": get_audio_output_configuration,
        "GetAudioOutputConfigurationOptions": get_audio_output_configuration_options,
        "SetAudioOutputConfiguration": set_audio_output_configuration,
    }
    for operation, handler in handlers.items():
        operations.add(Service.DEVICEIO, operation, handler)
