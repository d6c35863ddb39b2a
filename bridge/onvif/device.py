"""ONVIF device service (ver10 devicemgmt) of one virtual device: one legacy camera.

What the camera knows (manufacturer, model, MAC, clock, reboot, relays) comes from its driver;
what belongs to the gateway (addresses, ports, users, scopes, discovery mode) from the
:class:`~bridge.onvif.context.DeviceContext`. A service is advertised (GetCapabilities,
GetServices) only when this device really serves it: its module registered handlers, and for
PTZ and imaging the camera can do it. Who may call which operation is not decided here but by
the access table (:mod:`bridge.onvif.access`), before any handler runs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final
from urllib.parse import quote

from bridge.errors import ActionFailed, ActionNotSupported, InvalidArgVal, OperationProhibited
from bridge.onvif import deviceio
from bridge.onvif.camera_calls import camera_call
from bridge.onvif.context import DeviceContext
from bridge.onvif.soap import (
    Handler,
    OnvifRequest,
    Operations,
    Service,
    catalog,
    service_capabilities_element,
)
from bridge.onvif.users import (
    MAX_PASSWORD_LENGTH,
    MAX_USERNAME_LENGTH,
    MAX_USERS,
    Account,
    UserAccounts,
    user_level,
)

# The release of the vendored WSDLs (their schema version), reported for every service.
ONVIF_VERSION: Final = {"Major": 26, "Minor": 6}
SCOPE_PREFIX: Final = "onvif://www.onvif.org/"
MAX_CONFIGURABLE_SCOPES: Final = 32
MAX_SCOPE_LENGTH: Final = 256
WSDL_URL: Final = "https://www.onvif.org/profiles/specifications/"
INTERFACE: Final = "eth0"

_CATEGORIES: Final = {
    "Device": Service.DEVICE,
    "Media": Service.MEDIA,
    "PTZ": Service.PTZ,
    "Imaging": Service.IMAGING,
    "Events": Service.EVENTS,
}
# A POSIX TZ string (IEEE 1003.1 section 8.3), or an IANA name, which newer clients send.
_POSIX_TZ = re.compile(
    r"(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)[+-]?\d{1,2}(?::\d{2}){0,2}"
    r"(?:(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)(?:[+-]?\d{1,2}(?::\d{2}){0,2})?"
    r"(?:,[A-Za-z0-9./:+-]+,[A-Za-z0-9./:+-]+)?)?"
)
_IANA_TZ = re.compile(r"[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+|UTC|GMT")
# What the device service's capabilities and GetCapabilities' older categories both deny.
_NETWORK_FLAGS: Final = dict.fromkeys(
    ("IPFilter", "ZeroConfiguration", "IPVersion6", "DynDNS"), False
)


# -- values (plain functions of the device) ---------------------------------------------------


def fixed_scopes(device: DeviceContext) -> list[str]:
    """What the device is probed by (WS-Discovery) and reports in GetScopes: the profiles it
    really meets, its hardware, name, MAC and, where the config sets one, its location."""
    scopes = [f"{SCOPE_PREFIX}Profile/Streaming"]
    if device.events.motion:
        # Profile T needs motion alarm events besides H.264 over Media2.
        scopes.append(f"{SCOPE_PREFIX}Profile/T")
    scopes += [
        f"{SCOPE_PREFIX}hardware/{quote(device.info.model, safe='')}",
        f"{SCOPE_PREFIX}name/{quote(device.camera, safe='')}",
        f"{SCOPE_PREFIX}MAC/{hardware_address(device).lower()}",
    ]
    if device.location:
        scopes.append(f"{SCOPE_PREFIX}location/{quote(device.location, safe='/')}")
    return scopes


def all_scopes(device: DeviceContext) -> list[str]:
    """The fixed scopes and those set over ONVIF: what WS-Discovery probes match."""
    return fixed_scopes(device) + device.scopes


def system_flags(device: DeviceContext) -> dict[str, bool]:
    """What both capability answers say of the system: WS-Discovery Resolve and Bye are
    there while the gateway announces its devices."""
    return {
        "DiscoveryResolve": device.announced,
        "DiscoveryBye": device.announced,
        "RemoteDiscovery": False,
        "SystemBackup": False,
        "SystemLogging": False,
    }


def served_services(device: DeviceContext, operations: Operations) -> list[Service]:
    """The services this device answers: some handler registered, and the camera able to."""
    capabilities = device.driver.capabilities
    able = {Service.PTZ: capabilities.ptz.any, Service.IMAGING: bool(capabilities.imaging)}
    return [
        service
        for service in Service
        if able.get(service, True)
        and any(operations.get(service, name) for name in catalog().operation_names(service))
    ]


def service_capabilities(device: DeviceContext) -> Mapping[str, Any]:
    """The device service's own capabilities: what of it the gateway supports."""
    return {
        "Network": {
            **_NETWORK_FLAGS,
            "Dot11Configuration": False,
            "HostnameFromDHCP": False,
            "NTP": 0,
        },
        "Security": {
            "UsernameToken": True,
            "HttpDigest": True,
            "MaxUsers": MAX_USERS,
            "MaxUserNameLength": MAX_USERNAME_LENGTH,
            "MaxPasswordLength": MAX_PASSWORD_LENGTH,
        },
        "System": {
            **system_flags(device),
            "DiscoveryNotSupported": not device.announced,
            "HttpFirmwareUpgrade": False,
            "HttpSystemBackup": False,
            "HttpSystemLogging": False,
            "HttpSupportInformation": False,
            # The network is the gateway host's, not the device's to change.
            "NetworkConfigNotSupported": True,
        },
        "Misc": {},
    }


def legacy_capabilities(
    device: DeviceContext, served: list[Service], xaddr: Callable[[Service], str]
) -> dict[str, Any]:
    """Every category of GetCapabilities this device has, by category name."""
    camera = device.driver.capabilities
    categories: dict[str, Any] = {
        "Device": {
            "XAddr": xaddr(Service.DEVICE),
            "Network": _NETWORK_FLAGS,
            "System": {
                **system_flags(device),
                "FirmwareUpgrade": False,
                "SupportedVersions": [ONVIF_VERSION],
            },
            "IO": {"InputConnectors": camera.digital_inputs, "RelayOutputs": camera.relay_outputs},
            "Security": {
                "TLS1.1": False,
                "TLS1.2": False,
                "OnboardKeyGeneration": False,
                "AccessPolicyConfig": False,
                "X.509Token": False,
                "SAMLToken": False,
                "KerberosToken": False,
                "RELToken": False,
            },
        }
    }
    if Service.MEDIA in served:
        categories["Media"] = {
            "XAddr": xaddr(Service.MEDIA),
            "StreamingCapabilities": {
                "RTPMulticast": False,
                "RTP_TCP": True,
                "RTP_RTSP_TCP": True,
            },
        }
    if Service.EVENTS in served:
        categories["Events"] = {
            "XAddr": xaddr(Service.EVENTS),
            "WSSubscriptionPolicySupport": False,
            "WSPullPointSupport": True,
            "WSPausableSubscriptionManagerInterfaceSupport": False,
        }
    for name, service in (("Imaging", Service.IMAGING), ("PTZ", Service.PTZ)):
        if service in served:
            categories[name] = {"XAddr": xaddr(service)}
    if Service.DEVICEIO in served:
        categories["Extension"] = {
            "DeviceIO": {"XAddr": xaddr(Service.DEVICEIO), **_device_io_counts(device)}
        }
    return categories


def _device_io_counts(device: DeviceContext) -> dict[str, Any]:
    counts = deviceio.service_capabilities(device)
    keys = ("VideoSources", "VideoOutputs", "AudioSources", "AudioOutputs", "RelayOutputs")
    return {key: counts[key] for key in keys}


def date_time(moment: dt.datetime) -> dict[str, Any]:
    return {
        "Time": {"Hour": moment.hour, "Minute": moment.minute, "Second": moment.second},
        "Date": {"Year": moment.year, "Month": moment.month, "Day": moment.day},
    }


def parse_date_time(value: Mapping[str, Any]) -> dt.datetime:
    """A tt:DateTime as an aware UTC datetime; ter:InvalidDateTime when it names no moment."""
    date, time = value["Date"], value["Time"]
    try:
        return dt.datetime(
            date["Year"],
            date["Month"],
            date["Day"],
            time["Hour"],
            time["Minute"],
            time["Second"],
            tzinfo=dt.UTC,
        )
    except ValueError:
        raise InvalidArgVal("No such date or time", subcode="InvalidDateTime") from None


def hardware_address(device: DeviceContext) -> str:
    """The camera's own MAC; without one, a stable locally administered address derived from
    the device's identity, so a VMS that keys devices by MAC still keeps them apart."""
    if device.info.mac:
        return device.info.mac
    digest = uuid.uuid5(uuid.NAMESPACE_URL, device.endpoint).bytes
    octets = bytes([(digest[0] & 0xFC) | 0x02, *digest[1:6]])
    return ":".join(f"{octet:02X}" for octet in octets)


def serial_number(device: DeviceContext) -> str:
    """The serial the gateway keeps for the device, else the camera's, else one from its MAC."""
    return device.serial or device.info.serial or hardware_address(device).replace(":", "")


def network_interface(device: DeviceContext, host: str) -> dict[str, Any]:
    """The gateway's interface as this client reached it, carrying the camera's MAC."""
    interface: dict[str, Any] = {
        "token": INTERFACE,
        "Enabled": True,
        "Info": {"Name": INTERFACE, "HwAddress": hardware_address(device), "MTU": 1500},
    }
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return interface  # a host name: the address is the resolver's business
    # The prefix of the gateway's network is not known here: claim the address alone.
    prefixed = [{"Address": str(address), "PrefixLength": address.max_prefixlen}]
    if address.version == 4:
        interface["IPv4"] = {"Enabled": True, "Config": {"Manual": prefixed, "DHCP": False}}
    else:
        interface["IPv6"] = {"Enabled": True, "Config": {"DHCP": "Off", "Manual": prefixed}}
    return interface


def check_time_zone(zone: str) -> None:
    if not (_POSIX_TZ.fullmatch(zone) or _IANA_TZ.fullmatch(zone)):
        raise InvalidArgVal("Not a POSIX time zone", subcode="InvalidTimeZone")


def _accounts(params: Mapping[str, Any]) -> list[Account]:
    return [
        Account(user["Username"], user_level(user["UserLevel"]), user.get("Password") or "")
        for user in params["User"]
    ]


# -- handlers -----------------------------------------------------------------------------------


def register(operations: Operations, device: DeviceContext) -> None:
    """Add this service's handlers for one device."""
    accounts = UserAccounts.of(device.users)
    driver = device.driver

    def add(name: str, handler: Handler) -> None:
        operations.add(Service.DEVICE, name, handler)

    def xaddr_for(request: OnvifRequest) -> Callable[[Service], str]:
        return lambda service: device.xaddr(request, service)

    async def get_device_information(request: OnvifRequest) -> Mapping[str, Any]:
        info = device.info
        return {
            "Manufacturer": info.manufacturer,
            "Model": info.model,
            "FirmwareVersion": info.firmware,
            "SerialNumber": serial_number(device),
            "HardwareId": info.hardware_id or info.model,
        }

    async def get_capabilities(request: OnvifRequest) -> Mapping[str, Any]:
        served = served_services(device, operations)
        categories = legacy_capabilities(device, served, xaddr_for(request))
        asked = request.params.get("Category") or ["All"]
        if "All" in asked:
            return {"Capabilities": categories}
        missing = [name for name in asked if _CATEGORIES.get(name) not in served]
        if missing:
            raise ActionNotSupported(f"No {missing[0]} service", subcode="NoSuchService")
        return {"Capabilities": {name: categories[name] for name in asked}}

    async def capabilities_of(service: Service, request: OnvifRequest) -> Any:
        """What the service's own GetServiceCapabilities answers (None: it has none)."""
        handler = operations.get(service, "GetServiceCapabilities")
        if handler is None:
            return None
        asked = replace(request, service=service, operation="GetServiceCapabilities", params={})
        return ((await handler(asked)) or {}).get("Capabilities")

    async def get_services(request: OnvifRequest) -> Mapping[str, Any]:
        include = request.params["IncludeCapability"]
        entries = []
        for service in served_services(device, operations):
            entry: dict[str, Any] = {
                "Namespace": service.namespace,
                "XAddr": device.xaddr(request, service),
                "Version": ONVIF_VERSION,
            }
            capabilities = await capabilities_of(service, request) if include else None
            if capabilities is not None:
                element = service_capabilities_element(service, capabilities)
                entry["Capabilities"] = {"_value_1": element}
            entries.append(entry)
        return {"Service": entries}

    async def get_service_capabilities(request: OnvifRequest) -> Mapping[str, Any]:
        return {"Capabilities": service_capabilities(device)}

    async def get_system_date_and_time(request: OnvifRequest) -> Mapping[str, Any]:
        now = date_time(dt.datetime.now(dt.UTC))
        return {
            "SystemDateAndTime": {
                "DateTimeType": "Manual",
                "DaylightSavings": False,
                "TimeZone": {"TZ": "UTC0"},
                "UTCDateTime": now,
                "LocalDateTime": now,
            }
        }

    async def set_system_date_and_time(request: OnvifRequest) -> None:
        """The gateway keeps its host's clock and reports UTC; the time is passed on to the
        camera's own clock where it has one (its overlays and logs show it)."""
        params = request.params
        zone = params.get("TimeZone")
        if zone is not None:
            check_time_zone(zone["TZ"])
        if params["DateTimeType"] == "NTP":
            raise InvalidArgVal(
                "The gateway has no NTP server to use", subcode="NtpServerUndefined"
            )
        if params.get("UTCDateTime") is None:
            raise InvalidArgVal("Manual time without UTCDateTime", subcode="InvalidDateTime")
        moment = parse_date_time(params["UTCDateTime"])
        if driver.capabilities.set_datetime:
            with camera_call("set its clock"):
                await driver.set_datetime(moment)

    async def get_scopes(request: OnvifRequest) -> Mapping[str, Any]:
        return {
            "Scopes": [{"ScopeDef": "Fixed", "ScopeItem": s} for s in fixed_scopes(device)]
            + [{"ScopeDef": "Configurable", "ScopeItem": s} for s in device.scopes]
        }

    def replace_scopes(scopes: list[str]) -> None:
        fixed = fixed_scopes(device)
        kept = [s for s in dict.fromkeys(scopes) if s not in fixed]
        for scope in kept:
            # WS-Discovery carries scopes as a space-separated list of URIs.
            if not scope or len(scope) > MAX_SCOPE_LENGTH or any(c.isspace() for c in scope):
                raise InvalidArgVal(
                    f"A scope must be a URI without spaces, at most {MAX_SCOPE_LENGTH} characters"
                )
        if len(kept) > MAX_CONFIGURABLE_SCOPES:
            raise ActionFailed(
                f"At most {MAX_CONFIGURABLE_SCOPES} configurable scopes", subcode="TooManyScopes"
            )
        device.scopes[:] = kept

    async def set_scopes(request: OnvifRequest) -> None:
        replace_scopes(request.params["Scopes"])
        await device.discovery_changed()

    async def add_scopes(request: OnvifRequest) -> None:
        replace_scopes(device.scopes + request.params["ScopeItem"])
        await device.discovery_changed()

    async def remove_scopes(request: OnvifRequest) -> Mapping[str, Any]:
        items: list[str] = request.params["ScopeItem"]
        fixed = fixed_scopes(device)
        for item in items:
            if item in fixed:
                raise OperationProhibited(f"{item} is a fixed scope", subcode="FixedScope")
            if item not in device.scopes:
                raise InvalidArgVal(f"No scope {item[:128]}", subcode="NoScope")
        device.scopes[:] = [s for s in device.scopes if s not in items]
        await device.discovery_changed()
        return {"ScopeItem": items}

    async def get_hostname(request: OnvifRequest) -> Mapping[str, Any]:
        return {"HostnameInformation": {"FromDHCP": False, "Name": device.camera}}

    async def get_network_interfaces(request: OnvifRequest) -> Mapping[str, Any]:
        return {"NetworkInterfaces": [network_interface(device, device.host(request))]}

    async def get_network_protocols(request: OnvifRequest) -> Mapping[str, Any]:
        ports = device.ports
        return {
            "NetworkProtocols": [
                {"Name": "HTTP", "Enabled": True, "Port": [ports.onvif]},
                {"Name": "RTSP", "Enabled": True, "Port": [ports.rtsp]},
            ]
        }

    async def get_dns(request: OnvifRequest) -> Mapping[str, Any]:
        return {"DNSInformation": {"FromDHCP": False}}

    async def get_ntp(request: OnvifRequest) -> Mapping[str, Any]:
        return {"NTPInformation": {"FromDHCP": False}}

    async def get_network_default_gateway(request: OnvifRequest) -> Mapping[str, Any]:
        return {"NetworkGateway": {}}

    async def get_discovery_mode(request: OnvifRequest) -> Mapping[str, Any]:
        return {"DiscoveryMode": "Discoverable" if device.discoverable else "NonDiscoverable"}

    async def set_discovery_mode(request: OnvifRequest) -> None:
        device.discoverable = request.params["DiscoveryMode"] == "Discoverable"
        await device.discovery_changed()

    async def get_users(request: OnvifRequest) -> Mapping[str, Any]:
        return {
            "User": [
                {"Username": account.username, "UserLevel": str(account.level)}
                for account in accounts.accounts()
            ]
        }

    async def create_users(request: OnvifRequest) -> None:
        await accounts.create_users(_accounts(request.params))

    async def delete_users(request: OnvifRequest) -> None:
        await accounts.delete_users(request.params["Username"])

    async def set_user(request: OnvifRequest) -> None:
        await accounts.change_users(_accounts(request.params))

    async def system_reboot(request: OnvifRequest) -> Mapping[str, Any]:
        if not driver.capabilities.reboot:
            raise ActionNotSupported("The camera cannot reboot")
        with camera_call("reboot"):
            await driver.reboot()
        return {"Message": "The camera is rebooting; its streams return when it is back"}

    async def set_system_factory_default(request: OnvifRequest) -> None:
        if not driver.capabilities.factory_default:
            raise ActionNotSupported("The camera cannot reset to factory defaults")
        with camera_call("reset to factory defaults"):
            await driver.factory_default()

    async def get_wsdl_url(request: OnvifRequest) -> Mapping[str, Any]:
        return {"WsdlUrl": WSDL_URL}

    async def get_relay_outputs(request: OnvifRequest) -> Mapping[str, Any]:
        return await deviceio.get_relay_outputs(device)

    async def set_relay_output_state(request: OnvifRequest) -> None:
        await deviceio.set_relay_output_state(device, request.params)

    async def get_endpoint_reference(request: OnvifRequest) -> Mapping[str, Any]:
        return {"GUID": device.endpoint}

    add("GetDeviceInformation", get_device_information)
    add("GetCapabilities", get_capabilities)
    add("GetServices", get_services)
    add("GetServiceCapabilities", get_service_capabilities)
    add("GetSystemDateAndTime", get_system_date_and_time)
    add("SetSystemDateAndTime", set_system_date_and_time)
    add("GetScopes", get_scopes)
    add("SetScopes", set_scopes)
    add("AddScopes", add_scopes)
    add("RemoveScopes", remove_scopes)
    add("GetHostname", get_hostname)
    add("GetNetworkInterfaces", get_network_interfaces)
    add("GetNetworkProtocols", get_network_protocols)
    add("GetDNS", get_dns)
    add("GetNTP", get_ntp)
    add("GetNetworkDefaultGateway", get_network_default_gateway)
    add("GetDiscoveryMode", get_discovery_mode)
    add("SetDiscoveryMode", set_discovery_mode)
    add("GetUsers", get_users)
    add("CreateUsers", create_users)
    add("DeleteUsers", delete_users)
    add("SetUser", set_user)
    add("SystemReboot", system_reboot)
    add("SetSystemFactoryDefault", set_system_factory_default)
    add("GetWsdlUrl", get_wsdl_url)
    add("GetRelayOutputs", get_relay_outputs)
    add("SetRelayOutputState", set_relay_output_state)
    add("GetEndpointReference", get_endpoint_reference)
