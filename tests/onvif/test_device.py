"""The device service end to end: onvif-zeep-async (and raw SOAP where a client would not
misbehave) against a Gateway in front of the emulated cameras. The gateway checks every
response it sends against the schemas, so a call that passes also produced a valid reply."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER, Serve
from gateway_devices import (
    DIALECTS,
    Device,
    HamaWithoutPtz,
    OpenDevice,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from lxml import etree
from onvif.exceptions import ONVIFError
from test_onvif_server import body_element, envelope, fault_subcodes, post, username_token
from zeep.exceptions import Fault

from bridge.app import Gateway
from bridge.cameras.base import Dialect
from bridge.config import Config, GatewayConfig
from bridge.onvif import OnvifRequest, Operations, Service, device_app
from bridge.onvif.context import endpoint_reference
from bridge.onvif.users import Account, UserAccounts, UserLevel
from bridge.simulator.core import SimOptions
from bridge.simulator.registry import SIMULATORS

TDS = Service.DEVICE.namespace
TT = "http://www.onvif.org/ver10/schema"
SCOPE = "onvif://www.onvif.org/"


def gateway_token() -> str:
    """A fresh WS-Security UsernameToken of the gateway's user."""
    return username_token(GATEWAY_PASSWORD, user=GATEWAY_USER)


def user(name: str, password: str | None, level: str = "User") -> dict[str, Any]:
    return {"Username": name, "Password": password, "UserLevel": level}


async def expect_fault(call: Any, *codes: str) -> None:
    assert await fault_of(call) == list(codes)


async def test_each_camera_is_its_own_device_with_the_cameras_identity(
    open_device: OpenDevice,
) -> None:
    devices = await open_device.behind_one_gateway(
        *(
            SIMULATORS[dialect](SimOptions(mac=f"00:1A:2B:3C:4D:{index:02X}"))
            for index, dialect in enumerate(DIALECTS)
        )
    )
    seen: dict[str, set[object]] = {"port": set(), "guid": set(), "mac": set()}
    for device in devices:
        sim = device.sim
        context = device.context
        camera = device.client()
        devicemgmt = await camera.create_devicemgmt_service()
        info = await devicemgmt.GetDeviceInformation()
        (interface,) = await devicemgmt.GetNetworkInterfaces()
        guid = (await devicemgmt.GetEndpointReference()).GUID
        expected = context.info
        assert (info.Manufacturer, info.Model, info.FirmwareVersion) == (
            expected.manufacturer,
            expected.model,
            expected.firmware,
        )
        assert info.SerialNumber == expected.serial
        assert interface.Enabled
        assert interface.Info.HwAddress == sim.camera.options.mac
        assert interface.IPv4.Config.Manual[0].Address == "127.0.0.1"
        assert guid == endpoint_reference(expected, sim.camera.dialect)  # stable across restarts
        for key, value in (
            ("port", context.ports.onvif),
            ("guid", guid),
            ("mac", sim.camera.options.mac),
        ):
            seen[key].add(value)
    assert all(len(values) == len(devices) for values in seen.values())


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_advertised_services_are_the_ones_served(
    open_device: OpenDevice, dialect: Dialect
) -> None:
    device = await open_device(dialect)
    camera_capabilities = device.context.driver.capabilities
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    capabilities = await devicemgmt.GetCapabilities({"Category": "All"})
    services = await devicemgmt.GetServices({"IncludeCapability": True})
    answered = {}
    async with aiohttp.ClientSession() as session:
        for service in services:
            # Each advertised address answers its service's GetServiceCapabilities.
            request = envelope(
                f'<c:GetServiceCapabilities xmlns:c="{service.Namespace}"/>', gateway_token()
            )
            answered[service.Namespace] = await post(service.XAddr, request, session=session)
    xaddrs = {service.Namespace: service.XAddr for service in services}
    port = device.port
    assert xaddrs[TDS] == f"http://127.0.0.1:{port}/onvif/device_service"
    assert capabilities.Device.XAddr == xaddrs[TDS]
    assert capabilities.Device.IO.RelayOutputs == camera_capabilities.relay_outputs
    assert capabilities.Device.IO.InputConnectors == camera_capabilities.digital_inputs
    # onvif-zeep-async's older schema files see Extension's DeviceIO as an unknown element.
    (deviceio,) = capabilities.Extension._value_1
    assert deviceio.findtext(f"{{{TT}}}XAddr") == xaddrs[Service.DEVICEIO.namespace]
    assert deviceio.findtext(f"{{{TT}}}RelayOutputs") == str(camera_capabilities.relay_outputs)
    legacy = {
        Service.MEDIA: capabilities.Media,
        Service.PTZ: capabilities.PTZ,
        Service.IMAGING: capabilities.Imaging,
        Service.EVENTS: capabilities.Events,
    }
    for service, category in legacy.items():
        advertised = service.namespace in xaddrs
        assert (category is not None) == advertised
        if advertised:
            assert category.XAddr == xaddrs[service.namespace]
    for namespace, (status, _, reply) in answered.items():
        assert status == 200, fault_subcodes(reply)
        response = body_element(reply)
        assert etree.QName(response).namespace == namespace
    for service in services:  # each entry carries its service's capabilities
        assert service.Capabilities is not None
        assert service.Version.Major >= 2
    io_entry = next(s for s in services if s.Namespace == Service.DEVICEIO.namespace)
    io_capabilities = io_entry.Capabilities._value_1  # the client does not know its type
    assert io_capabilities.tag == f"{{{Service.DEVICEIO.namespace}}}Capabilities"
    assert io_capabilities.get("RelayOutputs") == str(camera_capabilities.relay_outputs)
    # Where the camera plays audio, its one output (what the RTSP backchannel reaches).
    audio_outputs = str(int(camera_capabilities.audio_out is not None))
    assert deviceio.findtext(f"{{{TT}}}AudioOutputs") == audio_outputs
    assert io_capabilities.get("AudioOutputs") == audio_outputs


async def test_camera_that_cannot_move_has_no_ptz_service(
    open_device: OpenDevice,
) -> None:
    device = await open_device(HamaWithoutPtz(SimOptions()))
    assert not device.context.driver.capabilities.ptz.any
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    capabilities = await devicemgmt.GetCapabilities({"Category": "All"})
    services = await devicemgmt.GetServices({"IncludeCapability": False})
    await expect_fault(
        devicemgmt.GetCapabilities({"Category": "PTZ"}), "ActionNotSupported", "NoSuchService"
    )
    await expect_fault(
        devicemgmt.GetCapabilities({"Category": "Analytics"}),
        "ActionNotSupported",
        "NoSuchService",
    )
    device_only = await devicemgmt.GetCapabilities({"Category": "Device"})
    assert capabilities.PTZ is None
    assert Service.PTZ.namespace not in {service.Namespace for service in services}
    assert device_only.Device.XAddr.endswith("/onvif/device_service")
    assert device_only.Media is None


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_clock_is_utc_and_setting_it_sets_the_cameras(
    open_device: OpenDevice, dialect: Dialect
) -> None:
    device = await open_device(dialect)
    moment = dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    wanted = {
        "DateTimeType": "Manual",
        "DaylightSavings": False,
        "TimeZone": {"TZ": "CET-1CEST,M3.5.0,M10.5.0/3"},
        "UTCDateTime": {
            "Date": {"Year": moment.year, "Month": moment.month, "Day": moment.day},
            "Time": {"Hour": moment.hour, "Minute": moment.minute, "Second": moment.second},
        },
    }
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    clock = await devicemgmt.authless_GetSystemDateAndTime()
    await devicemgmt.SetSystemDateAndTime(wanted)
    await expect_fault(
        devicemgmt.SetSystemDateAndTime({**wanted, "TimeZone": {"TZ": "not a zone!"}}),
        "InvalidArgVal",
        "InvalidTimeZone",
    )
    february_30 = {**wanted["UTCDateTime"], "Date": {"Year": 2031, "Month": 2, "Day": 30}}
    await expect_fault(
        devicemgmt.SetSystemDateAndTime({**wanted, "UTCDateTime": february_30}),
        "InvalidArgVal",
        "InvalidDateTime",
    )
    await expect_fault(
        devicemgmt.SetSystemDateAndTime({**wanted, "DateTimeType": "NTP"}),
        "InvalidArgVal",
        "NtpServerUndefined",
    )
    utc = clock.UTCDateTime
    reported = dt.datetime(
        utc.Date.Year, utc.Date.Month, utc.Date.Day, utc.Time.Hour, utc.Time.Minute,
        utc.Time.Second, tzinfo=dt.UTC,
    )  # fmt: skip
    assert abs((reported - dt.datetime.now(dt.UTC)).total_seconds()) < 5
    assert clock.TimeZone.TZ == "UTC0"
    camera_clock = device.sim.camera.state.now()
    if device.context.driver.capabilities.set_datetime:
        assert abs((camera_clock - moment).total_seconds()) < 5
    else:  # nothing to set: the gateway keeps its own clock and the camera has none to set
        assert abs((camera_clock - dt.datetime.now(dt.UTC)).total_seconds()) < 5


async def test_scopes(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.VAPIX2)
    fixed = [
        f"{SCOPE}Profile/Streaming",
        f"{SCOPE}Profile/T",
        f"{SCOPE}hardware/AXIS%20213%20PTZ",
        f"{SCOPE}name/vapix2",
        f"{SCOPE}MAC/{SimOptions().mac.lower()}",
    ]
    porch, garden = f"{SCOPE}location/porch", f"{SCOPE}location/garden"
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()

    async def scopes() -> list[tuple[str, str]]:
        return [(s.ScopeDef, s.ScopeItem) for s in await devicemgmt.GetScopes()]

    assert await scopes() == [("Fixed", scope) for scope in fixed]
    await devicemgmt.AddScopes({"ScopeItem": [porch]})
    assert await scopes() == [*(("Fixed", s) for s in fixed), ("Configurable", porch)]
    await devicemgmt.SetScopes({"Scopes": [garden, fixed[0]]})
    assert (await scopes())[-1:] == [("Configurable", garden)]
    await expect_fault(
        devicemgmt.RemoveScopes({"ScopeItem": [fixed[2]]}),
        "OperationProhibited",
        "FixedScope",
    )
    await expect_fault(
        devicemgmt.RemoveScopes({"ScopeItem": [garden, porch]}), "InvalidArgVal", "NoScope"
    )
    assert await devicemgmt.RemoveScopes({"ScopeItem": [garden]}) == [garden]
    assert await scopes() == [("Fixed", scope) for scope in fixed]
    assert device.context.scopes == []


async def test_network_settings_and_discovery_mode(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.FOSCAM)
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    hostname = await devicemgmt.GetHostname()
    protocols = await devicemgmt.GetNetworkProtocols()
    dns = await devicemgmt.GetDNS()
    ntp = await devicemgmt.GetNTP()
    await devicemgmt.GetNetworkDefaultGateway()
    wsdl_url = await devicemgmt.GetWsdlUrl()
    assert await devicemgmt.GetDiscoveryMode() == "Discoverable"
    await devicemgmt.SetDiscoveryMode({"DiscoveryMode": "NonDiscoverable"})
    assert await devicemgmt.GetDiscoveryMode() == "NonDiscoverable"
    assert not device.context.discoverable
    assert hostname.Name == "foscam"
    assert {p.Name: (p.Enabled, p.Port) for p in protocols} == {
        "HTTP": (True, [device.port]),
        "RTSP": (True, [device.gateway.rtsp.port]),
    }
    assert not dns.FromDHCP
    assert not ntp.FromDHCP
    assert wsdl_url.startswith("https://")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_reboot_and_factory_default_reach_the_camera(
    open_device: OpenDevice, dialect: Dialect
) -> None:
    device = await open_device(dialect)
    capabilities = device.context.driver.capabilities
    state = device.sim.camera.state
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    if capabilities.reboot:
        assert await devicemgmt.SystemReboot()
        await devicemgmt.SetSystemFactoryDefault({"FactoryDefault": "Soft"})
    else:
        await expect_fault(devicemgmt.SystemReboot(), "ActionNotSupported")
        await expect_fault(
            devicemgmt.SetSystemFactoryDefault({"FactoryDefault": "Hard"}),
            "ActionNotSupported",
        )
    expected = 1 if capabilities.reboot else 0
    assert (state.reboots, state.factory_resets) == (expected, expected)


async def snapshot_status(device: Device, user: str, password: str) -> int:
    """What the gateway's web app answers this user for the camera's snapshot."""
    url = f"http://127.0.0.1:{device.gateway.web_port}/snapshot/{device.sim.camera.dialect}.jpg"
    digest = aiohttp.DigestAuthMiddleware(user, password)
    async with aiohttp.ClientSession(middlewares=(digest,)) as session, session.get(url) as reply:
        return reply.status


async def test_users_created_over_onvif_are_the_gateways_users(
    open_device: OpenDevice, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    device = await open_device(Dialect.VAPIX2)
    secret, changed = "first-Secret-71", "second-Secret-72"
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    await devicemgmt.CreateUsers(
        {"User": [user("viewer", secret), user("operator", secret, "Operator")]}
    )
    listed = await devicemgmt.GetUsers()
    assert [(u.Username, u.UserLevel, u.Password) for u in listed] == [
        (GATEWAY_USER, "Administrator", None),
        ("viewer", "User", None),
        ("operator", "Operator", None),
    ]
    # The same users open the web app (and RTSP, which shares the mapping).
    assert await snapshot_status(device, "viewer", secret) == 200

    camera = device.client("viewer", secret)
    devicemgmt = await camera.create_devicemgmt_service()
    assert (await devicemgmt.GetDeviceInformation()).Model == device.context.info.model
    await expect_fault(devicemgmt.GetUsers(), "NotAuthorized")  # a User reads, no more
    camera = device.client("operator", secret)
    devicemgmt = await camera.create_devicemgmt_service()
    await devicemgmt.SetRelayOutputState({"RelayOutputToken": "1", "LogicalState": "active"})
    await expect_fault(
        devicemgmt.CreateUsers({"User": [user("sneaky", secret, "Administrator")]}),
        "NotAuthorized",
    )
    assert device.sim.camera.state.relays == [True]

    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    await devicemgmt.SetUser({"User": [user("viewer", changed)]})
    await devicemgmt.DeleteUsers({"Username": ["operator"]})
    assert await snapshot_status(device, "viewer", secret) == 401
    assert await snapshot_status(device, "viewer", changed) == 200
    assert await snapshot_status(device, "operator", secret) == 401
    camera = device.client("operator", secret)
    devicemgmt = await camera.create_devicemgmt_service()
    with pytest.raises((Fault, ONVIFError)):
        await devicemgmt.GetDeviceInformation()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bridge"))
    assert "ONVIF users created: viewer, operator" in ours
    assert secret not in ours
    assert changed not in ours


async def test_user_changes_that_onvif_forbids(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.HAMA)
    camera = device.client()
    devicemgmt = await camera.create_devicemgmt_service()
    await devicemgmt.CreateUsers({"User": [user("viewer", "pw-1")]})
    refused = [
        (
            devicemgmt.CreateUsers({"User": [user("new", "pw"), user("viewer", "pw")]}),
            ("OperationProhibited", "UsernameClash"),
        ),
        (
            devicemgmt.CreateUsers({"User": [user("guest", "pw", "Anonymous")]}),
            ("OperationProhibited", "AnonymousNotAllowed"),
        ),
        (
            devicemgmt.CreateUsers({"User": [user("x" * 40, "pw")]}),
            ("OperationProhibited", "UsernameTooLong"),
        ),
        (
            devicemgmt.CreateUsers({"User": [user("nopassword", None)]}),
            ("OperationProhibited", "PasswordTooWeak"),
        ),
        (
            devicemgmt.DeleteUsers({"Username": ["viewer", GATEWAY_USER]}),
            ("InvalidArgVal", "FixedUser"),
        ),
        (
            devicemgmt.SetUser({"User": [user(GATEWAY_USER, "other", "Administrator")]}),
            ("InvalidArgVal", "FixedUser"),
        ),
        (
            devicemgmt.DeleteUsers({"Username": ["nobody"]}),
            ("InvalidArgVal", "UsernameMissing"),
        ),
    ]
    for call, codes in refused:
        await expect_fault(call, *codes)
    names = [u.Username for u in await devicemgmt.GetUsers()]
    assert names == [GATEWAY_USER, "viewer"]  # each refused request changed nothing
    assert device.gateway.users[GATEWAY_USER] == GATEWAY_PASSWORD


async def test_users_persist_in_a_private_file_next_to_the_config(tmp_path: Path) -> None:
    users_file = tmp_path / "bridge.users.yaml"
    accounts = UserAccounts({"admin": "config-password"}, path=users_file)
    await accounts.create_users([Account("viewer", UserLevel.USER, "viewer-pw")])
    await accounts.create_users([Account("op", UserLevel.OPERATOR, "op-pw")])
    await accounts.delete_users(["viewer"])
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == [users_file.name]  # no temporary file left behind
    assert "config-password" not in users_file.read_text()

    config = Config(gateway=GatewayConfig(username="admin", password="config-password"))  # type: ignore[arg-type]
    restarted = Gateway(config, users_file=users_file)
    assert dict(restarted.users) == {"admin": "config-password", "op": "op-pw"}
    assert restarted.users.level("op") is UserLevel.OPERATOR
    assert restarted.users.level("admin") is UserLevel.ADMINISTRATOR


async def test_refused_credentials_and_unknown_operations_leave_the_gateway_serving(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.OPENAPI)
    url = f"http://127.0.0.1:{device.port}{Service.DEVICE.path}"
    info = "<tds:GetDeviceInformation/>"
    camera = device.client(GATEWAY_USER, "wrong")
    devicemgmt = await camera.create_devicemgmt_service()
    await expect_fault(devicemgmt.GetDeviceInformation(), "NotAuthorized")
    replayed = envelope(info, gateway_token())
    assert (await post(url, replayed))[0] == 200
    status, _, reply = await post(url, replayed)
    assert (status, fault_subcodes(reply)) == (400, ["env:Sender", "ter:NotAuthorized"])
    unknown = envelope('<x:Frobnicate xmlns:x="urn:example"/>', gateway_token())
    status, _, reply = await post(url, unknown)
    assert (status, fault_subcodes(reply)) == (500, ["env:Receiver", "ter:ActionNotSupported"])
    status, _, reply = await post(url, envelope(info, gateway_token()))
    assert status == 200
    assert body_element(reply).findtext(f"{{{TDS}}}Model") == device.context.info.model


@pytest.mark.parametrize("validate", [False, True])
async def test_response_validation_turns_an_invalid_response_into_a_fault(
    serve: Serve, validate: bool
) -> None:
    async def wrong_mode(request: OnvifRequest) -> dict[str, Any]:
        return {"DiscoveryMode": "Sometimes"}  # zeep sends it; the enumeration forbids it

    operations = Operations()
    operations.add(Service.DEVICE, "GetDiscoveryMode", wrong_mode)
    app = device_app(operations, {"admin": "admin"}, validate_responses=validate)
    url = await serve(app) + Service.DEVICE.path
    status, _, reply = await post(url, envelope("<tds:GetDiscoveryMode/>", gateway_token()))
    if validate:
        assert (status, fault_subcodes(reply)) == (500, ["env:Receiver", "ter:Action"])
    else:
        assert status == 200
