"""The vendored WSDLs load offline, and locations outside them are refused, not fetched."""

from __future__ import annotations

import pytest

from bridge.onvif.schemas import WSDL_DIR, LocalTransport, SchemaLocationRefused, local_path
from bridge.onvif.soap import Service, catalog


def test_remote_imports_map_to_vendored_files() -> None:
    assert local_path("http://docs.oasis-open.org/wsn/b-2.xsd") == WSDL_DIR / "external/b-2.xsd"
    assert local_path("http://docs.oasis-open.org/wsrf/rw-2.wsdl") == (
        WSDL_DIR / "external/rw-2.wsdl"
    )
    assert local_path(str(WSDL_DIR / "ver10/schema/onvif.xsd")).name == "onvif.xsd"


@pytest.mark.parametrize(
    "location",
    [
        "http://example.com/evil.xsd",
        "http://docs.oasis-open.org/wsn/../../etc/passwd",
        "http://docs.oasis-open.org/wsn/missing.xsd",
        "/etc/passwd",
        "file:///etc/passwd",
        "ftp://docs.oasis-open.org/wsn/b-2.xsd",
    ],
)
def test_other_locations_are_refused(location: str) -> None:
    with pytest.raises(SchemaLocationRefused):
        LocalTransport().load(location)


def test_every_service_has_its_operations() -> None:
    names = {service: catalog().operation_names(service) for service in Service}
    assert {"GetDeviceInformation", "GetSystemDateAndTime", "GetServices"} <= names[Service.DEVICE]
    assert {"GetProfiles", "GetStreamUri", "GetSnapshotUri"} <= names[Service.MEDIA]
    assert {"GetProfiles", "AddConfiguration"} <= names[Service.MEDIA2]
    assert {"ContinuousMove", "Stop", "GotoPreset"} <= names[Service.PTZ]
    assert {"GetImagingSettings", "SetImagingSettings"} <= names[Service.IMAGING]
    assert {"CreatePullPointSubscription", "PullMessages", "Renew", "Unsubscribe"} <= (
        names[Service.EVENTS]
    )
    assert {"GetRelayOutputs", "GetDigitalInputs"} <= names[Service.DEVICEIO]
