"""What a VMS knows each camera device by survives restarts, a reordered config, a renamed
camera, and a state file the gateway writes itself."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest

from bridge.config import load_state_file
from bridge.errors import ConfigError
from bridge.identity import DeviceIdentities, DeviceIdentity

MAC_A, MAC_B = "00:40:8c:00:00:01", "00:40:8c:00:00:02"


def endpoint(camera: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, camera)}"


async def identify(
    identities: DeviceIdentities, name: str, mac: str, index: int, fixed: int | None = None
) -> DeviceIdentity:
    return await identities.identify(
        name,
        mac,
        endpoint=endpoint(mac or name),
        serial=f"SN{index}",
        index=index,
        fixed_port=fixed,
    )


def restarted(path: Path, base_port: int = 8000) -> DeviceIdentities:
    return DeviceIdentities(load_state_file(path), path=path, base_port=base_port)


async def test_a_reordered_config_keeps_every_identity(tmp_path: Path) -> None:
    path = tmp_path / "bridge.state.yaml"
    first = DeviceIdentities((), path=path, base_port=8000)
    a = await identify(first, "porch", MAC_A, 0)
    b = await identify(first, "garden", MAC_B, 1)
    assert (a.onvif_port, b.onvif_port) == (8000, 8001)  # what earlier releases gave them

    second = restarted(path)
    b2 = await identify(second, "garden", MAC_B, 0)  # now first in the config
    a2 = await identify(second, "porch", MAC_A, 1)
    assert (a2.endpoint, a2.onvif_port, a2.serial) == (a.endpoint, 8000, "SN0")
    assert (b2.endpoint, b2.onvif_port, b2.serial) == (b.endpoint, 8001, "SN1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_renamed_camera_keeps_its_identity_and_a_new_unit_gets_a_new_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bridge.state.yaml"
    identities = DeviceIdentities((), path=path, base_port=8000)
    porch = await identify(identities, "porch", MAC_A, 0)
    renamed = await identify(restarted(path), "front-door", MAC_A, 0)
    assert (renamed.endpoint, renamed.onvif_port) == (porch.endpoint, porch.onvif_port)

    # Another unit put up under the old name is another device to a VMS.
    replacement = await identify(restarted(path), "front-door", MAC_B, 0)
    assert replacement.endpoint != porch.endpoint
    assert replacement.onvif_port == 8001  # 8000 stays with the first unit


async def test_a_camera_without_a_mac_is_known_by_its_name(tmp_path: Path) -> None:
    path = tmp_path / "bridge.state.yaml"
    nameless = await identify(DeviceIdentities((), path=path, base_port=8000), "attic", "", 3)
    again = await identify(restarted(path), "attic", "", 0)
    assert (again.endpoint, again.onvif_port) == (nameless.endpoint, 8003)
    # Once it reports a MAC, the record learns it.
    learned = await identify(restarted(path), "attic", MAC_A, 0)
    assert learned.endpoint == nameless.endpoint
    assert load_state_file(path)[0].mac == MAC_A


async def test_ports_the_config_fixes_or_reserves_are_respected(tmp_path: Path) -> None:
    identities = DeviceIdentities(
        (), path=tmp_path / "bridge.state.yaml", base_port=8000, reserved={8000, 8001}
    )
    fixed = await identify(identities, "porch", MAC_A, 0, fixed=80)
    free = await identify(identities, "garden", MAC_B, 0)
    assert (fixed.onvif_port, free.onvif_port) == (80, 8002)


async def test_without_a_base_port_every_device_takes_a_free_port() -> None:
    identities = DeviceIdentities((), path=None, base_port=0)
    assert (await identify(identities, "porch", MAC_A, 0)).onvif_port is None


async def test_scopes_and_discovery_mode_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "bridge.state.yaml"
    identities = DeviceIdentities((), path=path, base_port=8000)
    porch = await identify(identities, "porch", MAC_A, 0)
    porch.scopes = ["onvif://www.onvif.org/location/porch"]
    porch.discoverable = False
    await identities.save()
    again = await identify(restarted(path), "porch", MAC_A, 0)
    assert (again.scopes, again.discoverable) == (porch.scopes, False)


def test_a_damaged_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bridge.state.yaml"
    path.write_text("devices:\n  - {name: porch, endpoint: not-a-uuid}\n")
    with pytest.raises(ConfigError, match=r"bridge\.state\.yaml: devices\[0\]\.endpoint"):
        load_state_file(path)


async def test_an_unwritable_state_file_leaves_the_identities_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "missing-dir" / "bridge.state.yaml"
    identities = DeviceIdentities((), path=path, base_port=8000)
    porch = await identify(identities, "porch", MAC_A, 0)
    assert porch.onvif_port == 8000
    assert "cannot save the state file" in caplog.text


async def test_two_cameras_reporting_one_mac_get_identities_of_their_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    identities = DeviceIdentities((), path=None, base_port=8000)
    first = await identify(identities, "porch", MAC_A, 0)
    clone = await identify(identities, "garden", MAC_A, 1)  # cheap clones share a MAC
    assert first.endpoint != clone.endpoint
    assert (first.onvif_port, clone.onvif_port) == (8000, 8001)
    assert "another camera has" in caplog.text
