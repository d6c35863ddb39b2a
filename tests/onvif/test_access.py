"""Access classes and per-user quotas, tried as the attacks they stop: a User-level account
(created over ONVIF, as an administrator would) trying to move the head, change the picture,
switch a relay or add media profiles, and trying to take every event pull point of a camera.
Each through onvif-zeep-async against the gateway in front of an emulated camera."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from conftest import GATEWAY_PASSWORD, GATEWAY_USER
from gateway_devices import (
    Device,
    OpenDevice,
    fault_codes,
    fault_of,
    open_device_fixture,  # noqa: F401 (a fixture)
)
from test_events import PULL_POINT_NS, viewers
from test_onvif_media2 import media2_service
from zeep.exceptions import Fault

from bridge.cameras.base import Dialect
from bridge.errors import NotAuthorized
from bridge.onvif.access import ACCESS_CLASSES, check_access
from bridge.onvif.context import VIDEO_SOURCE
from bridge.onvif.eventhub import MAX_PULL_POINTS_PER_USER
from bridge.onvif.soap import Service, catalog
from bridge.onvif.users import GATEWAY_QUOTAS, Holding, UserLevel

PROFILE = "main"
SCOPE = "onvif://www.onvif.org/"
PASSWORD = "level-Pw-1"
MOVE = {"ProfileToken": PROFILE, "Velocity": {"PanTilt": {"x": 0.5, "y": 0.0}}}


def test_every_operation_of_every_service_has_an_access_class() -> None:
    missing = [
        f"{service.name} {name}"
        for service in Service
        for name in sorted(catalog().operation_names(service))
        if (service, name) not in ACCESS_CLASSES
    ]
    assert missing == []
    unknown = [f"{s.name} {n}" for s, n in ACCESS_CLASSES if n not in catalog().operation_names(s)]
    assert unknown == []


def test_an_operation_without_a_class_is_refused_to_everyone() -> None:
    with pytest.raises(NotAuthorized, match="not allowed for a user of level Administrator"):
        check_access(Service.PTZ, "Teleport", UserLevel.ADMINISTRATOR)
    check_access(Service.PTZ, "Stop", UserLevel.OPERATOR)


async def add_user(device: Device, name: str, level: str) -> Device:
    """A user of ``level`` created over ONVIF by the gateway's administrator."""
    devicemgmt = await device.client().create_devicemgmt_service()
    await devicemgmt.CreateUsers(
        {"User": [{"Username": name, "Password": PASSWORD, "UserLevel": level}]}
    )
    return device


@pytest.fixture
async def clients() -> AsyncIterator[contextlib.AsyncExitStack]:
    """Where a test's Media2 clients are closed."""
    async with contextlib.AsyncExitStack() as stack:
        yield stack


async def services(
    device: Device, clients: contextlib.AsyncExitStack, user: str
) -> dict[Service, Any]:
    """One client's service objects, as ``user``."""
    client = device.client(user, PASSWORD)
    of = {
        service: await device.service(service, client)
        for service in (Service.DEVICE, Service.MEDIA, Service.PTZ, Service.IMAGING)
    }
    of[Service.MEDIA2] = await clients.enter_async_context(media2_service(device, user, PASSWORD))
    return of


Calls = dict[str, Callable[[], Awaitable[Any]]]


async def refusals(calls: Calls) -> dict[str, list[str]]:
    """Each call's fault subcodes, made in order; [] for one that succeeded."""
    codes: dict[str, list[str]] = {}
    for name, call in calls.items():
        try:
            await call()
        except Fault as fault:
            codes[name] = fault_codes(fault)
        else:
            codes[name] = []
    return codes


def actuating_calls(of: dict[Service, Any], name: str) -> Calls:
    """The calls ONVIF classes ACTUATE (for Operators and Administrators)."""
    ptz, imaging, devicemgmt = of[Service.PTZ], of[Service.IMAGING], of[Service.DEVICE]
    picture = {"VideoSourceToken": VIDEO_SOURCE, "ImagingSettings": {"Brightness": 30.0}}
    relay = {"RelayOutputToken": "1", "LogicalState": "active"}
    return {
        "ContinuousMove": lambda: ptz.ContinuousMove(MOVE),
        "Stop": lambda: ptz.Stop({"ProfileToken": PROFILE}),
        "SetPreset": lambda: ptz.SetPreset({"ProfileToken": PROFILE, "PresetName": name}),
        "SetImagingSettings": lambda: imaging.SetImagingSettings(picture),
        "Media CreateProfile": lambda: of[Service.MEDIA].CreateProfile({"Name": name}),
        "Media2 CreateProfile": lambda: of[Service.MEDIA2].CreateProfile(Name=name),
        "SetRelayOutputState": lambda: devicemgmt.SetRelayOutputState(relay),
    }


async def test_a_user_cannot_actuate_the_camera_and_an_operator_can(
    open_device: OpenDevice, clients: contextlib.AsyncExitStack
) -> None:
    device = await open_device(Dialect.FOSCAM)  # moves, has picture controls and a relay
    await add_user(device, "viewer", "User")
    await add_user(device, "operator", "Operator")
    viewer = await services(device, clients, "viewer")
    await device.clear_requests()

    refused = await refusals(actuating_calls(viewer, "viewer"))
    assert refused == {name: ["NotAuthorized"] for name in refused}
    assert await device.requests() == []  # nothing reached the camera
    assert device.sim.camera.state.relays == [False]
    assert set((await device.state())["ptz_velocity"].values()) == {0.0}

    # What a User may do: read the device, its media, the head and the picture.
    assert (await viewer[Service.DEVICE].GetDeviceInformation()).Model
    assert (await viewer[Service.MEDIA].GetProfiles())[0].token == PROFILE
    assert (await viewer[Service.MEDIA2].GetProfiles())[0].token == PROFILE
    assert await viewer[Service.PTZ].GetStatus({"ProfileToken": PROFILE}) is not None
    settings = await viewer[Service.IMAGING].GetImagingSettings({"VideoSourceToken": VIDEO_SOURCE})
    assert settings.Brightness is not None
    assert [r.token for r in await viewer[Service.DEVICE].GetRelayOutputs()] == ["1"]
    assert await fault_of(viewer[Service.DEVICE].GetUsers()) == ["NotAuthorized"]

    operator = await services(device, clients, "operator")
    done = await refusals(actuating_calls(operator, "operator"))
    assert done == {name: [] for name in refused}
    assert device.sim.camera.state.relays == [True]
    # ... but the system stays the Administrator's.
    devicemgmt = operator[Service.DEVICE]
    refused = await refusals(
        {
            "SetScopes": lambda: devicemgmt.SetScopes({"Scopes": [f"{SCOPE}name/x"]}),
            "SystemReboot": devicemgmt.SystemReboot,
            "GetUsers": devicemgmt.GetUsers,
        }
    )
    assert refused == {name: ["NotAuthorized"] for name in refused}
    assert (await device.state())["reboots"] == 0


async def test_a_users_pull_points_are_capped_and_others_still_get_theirs(
    open_device: OpenDevice,
) -> None:
    device = await open_device(Dialect.HAMA)
    (taker, password), other = await viewers(device, 2)
    events = await device.service(Service.EVENTS, device.client(taker, password))
    held = [await events.CreatePullPointSubscription({}) for _ in range(MAX_PULL_POINTS_PER_USER)]
    for _ in range(3):  # the attack goes on: refused, again and again
        assert await fault_of(events.CreatePullPointSubscription({})) == ["Action"]

    # Another user, and the administrator, still get theirs.
    for account in (other, (GATEWAY_USER, GATEWAY_PASSWORD)):
        theirs = await device.service(Service.EVENTS, device.client(*account))
        assert (await theirs.CreatePullPointSubscription({})).SubscriptionReference

    # Unsubscribing gives the taker its share back.
    client = device.client(taker, password)
    client.xaddrs[PULL_POINT_NS] = held[0].SubscriptionReference.Address._value_1
    await (await client.create_subscription_service("PullPointSubscription")).Unsubscribe()
    assert (await events.CreatePullPointSubscription({})).SubscriptionReference


async def test_a_users_pull_points_are_capped_across_the_gateway(
    open_device: OpenDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(GATEWAY_QUOTAS, Holding.PULL_POINT, 3)
    first, second = await open_device.behind_one_gateway(Dialect.HAMA, Dialect.IPCAMCGI)
    ((user, password),) = await viewers(first, 1)
    on_first = await first.service(Service.EVENTS, first.client(user, password))
    on_second = await second.service(Service.EVENTS, second.client(user, password))
    for _ in range(MAX_PULL_POINTS_PER_USER):
        await on_first.CreatePullPointSubscription({})
    await on_second.CreatePullPointSubscription({})
    assert await fault_of(on_second.CreatePullPointSubscription({})) == ["Action"]
    admin = await second.service(Service.EVENTS, second.client())
    assert (await admin.CreatePullPointSubscription({})).SubscriptionReference


async def test_a_pull_point_answers_only_its_owner(open_device: OpenDevice) -> None:
    device = await open_device(Dialect.HAMA)
    (owner, password), (other, other_password) = await viewers(device, 2)
    events = await device.service(Service.EVENTS, device.client(owner, password))
    address = (await events.CreatePullPointSubscription({})).SubscriptionReference.Address
    # Another user who learned the address (it travels in clear) tries to drain and end it.
    intruder = device.client(other, other_password)
    intruder.xaddrs[PULL_POINT_NS] = address._value_1
    pull = {"Timeout": "PT1S", "MessageLimit": 10}
    stolen = await intruder.create_pullpoint_service()
    assert await fault_of(stolen.PullMessages(pull)) == ["InvalidArgVal"]
    ending = await intruder.create_subscription_service("PullPointSubscription")
    assert await fault_of(ending.Unsubscribe()) == ["InvalidArgVal"]
    # The owner still has it.
    mine = device.client(owner, password)
    mine.xaddrs[PULL_POINT_NS] = address._value_1
    pulled = await (await mine.create_pullpoint_service()).PullMessages(pull)
    assert pulled.TerminationTime > pulled.CurrentTime
