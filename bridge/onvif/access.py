"""Who may call what: the access class of every operation of every service the gateway serves,
and ONVIF Core's default access policy (which user levels each class admits).

One table, checked in one place (the SOAP endpoint, after authentication and before any
handler), so a service module cannot forget a check. The classes are the specifications' own:
Core (device management, events), Media, Media2, PTZ, Imaging and DeviceIO state one for most
operations. Where they are silent the table follows their pattern: reading media or its
configuration is READ_MEDIA, reading the system READ_SYSTEM, changing what the camera does
(moves, presets, picture, relays, encoders, profiles) ACTUATE, changing the system (users,
scopes, discovery, network, time, certificates) WRITE_SYSTEM, and what cannot be undone (reboot,
factory default, firmware) UNRECOVERABLE. An operation missing from the table is refused to
everyone, so a new handler without a class fails closed (and the test listing the catalog's
operations without one fails).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from bridge.errors import NotAuthorized
from bridge.onvif.soap import Service
from bridge.onvif.users import UserLevel


class AccessClass(enum.Enum):
    """ONVIF Core's access classes for service requests."""

    PRE_AUTH = "PRE_AUTH"  # no authentication needed
    READ_SYSTEM = "READ_SYSTEM"
    READ_SYSTEM_SENSITIVE = "READ_SYSTEM_SENSITIVE"
    READ_SYSTEM_SECRET = "READ_SYSTEM_SECRET"
    WRITE_SYSTEM = "WRITE_SYSTEM"
    UNRECOVERABLE = "UNRECOVERABLE"
    READ_MEDIA = "READ_MEDIA"
    ACTUATE = "ACTUATE"


PRE_AUTH: Final = AccessClass.PRE_AUTH
READ_SYSTEM: Final = AccessClass.READ_SYSTEM
READ_SYSTEM_SECRET: Final = AccessClass.READ_SYSTEM_SECRET
WRITE_SYSTEM: Final = AccessClass.WRITE_SYSTEM
UNRECOVERABLE: Final = AccessClass.UNRECOVERABLE
READ_MEDIA: Final = AccessClass.READ_MEDIA
ACTUATE: Final = AccessClass.ACTUATE

_USER: Final = frozenset({PRE_AUTH, READ_SYSTEM, READ_MEDIA})
# Core's "Default Access Policy Definition"; None is an unauthenticated (Anonymous) client.
POLICY: Final[Mapping[UserLevel | None, frozenset[AccessClass]]] = {
    None: frozenset({PRE_AUTH}),
    UserLevel.USER: _USER,
    UserLevel.OPERATOR: _USER | {AccessClass.READ_SYSTEM_SENSITIVE, ACTUATE},
    UserLevel.ADMINISTRATOR: frozenset(AccessClass),
}

# Service -> class -> operations. Every operation of a service's WSDL is listed, served or not.
_CLASSES: Final[Mapping[Service, Mapping[AccessClass, str]]] = {
    Service.DEVICE: {
        PRE_AUTH: """GetCapabilities GetEndpointReference GetHostname GetServiceCapabilities
            GetServices GetSystemDateAndTime GetWsdlUrl""",
        READ_SYSTEM: """GetAuthFailureWarningConfiguration GetAuthFailureWarningOptions
            GetCACertificates GetCertificateInformation GetCertificates GetCertificatesStatus
            GetClientCertificateMode GetDNS GetDPAddresses GetDeviceInformation
            GetDiscoveryMode GetDot11Capabilities GetDot11Status GetDynamicDNS GetGeoLocation
            GetIPAddressFilter GetNTP GetNetworkDefaultGateway GetNetworkInterfaces
            GetNetworkProtocols GetPasswordComplexityConfiguration GetPasswordComplexityOptions
            GetPasswordHistoryConfiguration GetRemoteDiscoveryMode GetRemoteUser GetScopes
            GetSystemUris GetUserRoles GetZeroConfiguration ScanAvailableDot11Networks""",
        # 802.1X configurations carry the EAP identity and password.
        READ_SYSTEM_SECRET: """GetAccessPolicy GetDot1XConfiguration GetDot1XConfigurations
            GetSystemBackup GetSystemLog GetSystemSupportInformation GetUsers""",
        # GetPkcs10Request makes the device generate key material.
        WRITE_SYSTEM: """AddIPAddressFilter AddScopes CreateCertificate
            CreateDot1XConfiguration CreateUsers DeleteCertificates DeleteDot1XConfiguration
            DeleteGeoLocation DeleteUserRole DeleteUsers GetPkcs10Request LoadCACertificates
            LoadCertificateWithPrivateKey LoadCertificates RemoveIPAddressFilter RemoveScopes
            SetAccessPolicy SetAuthFailureWarningConfiguration SetCertificatesStatus
            SetClientCertificateMode SetDNS SetDPAddresses SetDiscoveryMode
            SetDot1XConfiguration SetDynamicDNS SetGeoLocation SetHashingAlgorithm SetHostname
            SetHostnameFromDHCP SetIPAddressFilter SetNTP SetNetworkDefaultGateway
            SetNetworkInterfaces SetNetworkProtocols SetPasswordComplexityConfiguration
            SetPasswordHistoryConfiguration SetRemoteDiscoveryMode SetRemoteUser SetScopes
            SetSystemDateAndTime SetUser SetUserRole SetZeroConfiguration""",
        UNRECOVERABLE: """RestoreSystem SetSystemFactoryDefault StartFirmwareUpgrade
            StartSystemRestore SystemReboot UpgradeFirmware UpgradeSystemFirmware""",
        READ_MEDIA: "GetRelayOutputs GetStorageConfiguration GetStorageConfigurations",
        ACTUATE: """CreateStorageConfiguration DeleteStorageConfiguration SendAuxiliaryCommand
            SetRelayOutputSettings SetRelayOutputState SetStorageConfiguration""",
    },
    Service.MEDIA: {
        PRE_AUTH: "GetServiceCapabilities",
        READ_SYSTEM: "GetVideoSourceModes",
        WRITE_SYSTEM: "SetVideoSourceMode",
        READ_MEDIA: """GetAudioDecoderConfiguration GetAudioDecoderConfigurationOptions
            GetAudioDecoderConfigurations GetAudioEncoderConfiguration
            GetAudioEncoderConfigurationOptions GetAudioEncoderConfigurations
            GetAudioOutputConfiguration GetAudioOutputConfigurationOptions
            GetAudioOutputConfigurations GetAudioOutputs GetAudioSourceConfiguration
            GetAudioSourceConfigurationOptions GetAudioSourceConfigurations GetAudioSources
            GetCompatibleAudioDecoderConfigurations GetCompatibleAudioEncoderConfigurations
            GetCompatibleAudioOutputConfigurations GetCompatibleAudioSourceConfigurations
            GetCompatibleMetadataConfigurations GetCompatibleVideoAnalyticsConfigurations
            GetCompatibleVideoEncoderConfigurations GetCompatibleVideoSourceConfigurations
            GetGuaranteedNumberOfVideoEncoderInstances GetMetadataConfiguration
            GetMetadataConfigurationOptions GetMetadataConfigurations GetOSD GetOSDOptions
            GetOSDs GetProfile GetProfiles GetSnapshotUri GetStreamUri
            GetVideoAnalyticsConfiguration GetVideoAnalyticsConfigurations
            GetVideoEncoderConfiguration GetVideoEncoderConfigurationOptions
            GetVideoEncoderConfigurations GetVideoSourceConfiguration
            GetVideoSourceConfigurationOptions GetVideoSourceConfigurations GetVideoSources""",
        ACTUATE: """AddAudioDecoderConfiguration AddAudioEncoderConfiguration
            AddAudioOutputConfiguration AddAudioSourceConfiguration AddMetadataConfiguration
            AddPTZConfiguration AddVideoAnalyticsConfiguration AddVideoEncoderConfiguration
            AddVideoSourceConfiguration CreateOSD CreateProfile DeleteOSD DeleteProfile
            RemoveAudioDecoderConfiguration RemoveAudioEncoderConfiguration
            RemoveAudioOutputConfiguration RemoveAudioSourceConfiguration
            RemoveMetadataConfiguration RemovePTZConfiguration
            RemoveVideoAnalyticsConfiguration RemoveVideoEncoderConfiguration
            RemoveVideoSourceConfiguration SetAudioDecoderConfiguration
            SetAudioEncoderConfiguration SetAudioOutputConfiguration SetAudioSourceConfiguration
            SetMetadataConfiguration SetOSD SetSynchronizationPoint
            SetVideoAnalyticsConfiguration SetVideoEncoderConfiguration
            SetVideoSourceConfiguration StartMulticastStreaming StopMulticastStreaming""",
    },
    Service.MEDIA2: {
        PRE_AUTH: "GetServiceCapabilities",
        # Media2 classes audio clips and multicast audio decoding as system configuration.
        READ_SYSTEM: """GetAudioClips GetMulticastAudioDecoderConfigurationOptions
            GetMulticastAudioDecoderConfigurations GetPlayingAudioClips GetVideoSourceModes
            GetWebRTCConfigurations PlayAudioClip""",
        WRITE_SYSTEM: """AddAudioClip AddTTSAudioClip DeleteAudioClip SetAudioClip SetEQPreset
            SetMulticastAudioDecoderConfiguration SetVideoSourceMode SetWebRTCConfigurations""",
        READ_MEDIA: """GetAnalyticsConfigurations GetAudioDecoderConfigurationOptions
            GetAudioDecoderConfigurations GetAudioEncoderConfigurationOptions
            GetAudioEncoderConfigurations GetAudioOutputConfigurationOptions
            GetAudioOutputConfigurations GetAudioSourceConfigurationOptions
            GetAudioSourceConfigurations GetMaskOptions GetMasks GetMetadataConfigurationOptions
            GetMetadataConfigurations GetOSDOptions GetOSDs GetProfiles GetSnapshotUri
            GetStreamUri GetVideoEncoderConfigurationOptions GetVideoEncoderConfigurations
            GetVideoEncoderInstances GetVideoSourceConfigurationOptions
            GetVideoSourceConfigurations""",
        ACTUATE: """AddConfiguration CreateMask CreateOSD CreateProfile DeleteMask DeleteOSD
            DeleteProfile RemoveConfiguration SetAudioDecoderConfiguration
            SetAudioEncoderConfiguration SetAudioOutputConfiguration SetAudioSourceConfiguration
            SetMask SetMetadataConfiguration SetOSD SetSynchronizationPoint
            SetVideoEncoderConfiguration SetVideoSourceConfiguration StartMulticastStreaming
            StopMulticastStreaming""",
    },
    Service.PTZ: {
        PRE_AUTH: "GetServiceCapabilities",
        READ_MEDIA: """GetCompatibleConfigurations GetConfiguration GetConfigurationOptions
            GetConfigurations GetNode GetNodes GetPresetTour GetPresetTourOptions
            GetPresetTours GetPresets GetStatus""",
        ACTUATE: """AbsoluteMove ContinuousMove CreatePresetTour GeoMove GotoHomePosition
            GotoPreset ModifyPresetTour MoveAndStartTracking OperatePresetTour RelativeMove
            RemovePreset RemovePresetTour SendAuxiliaryCommand SetConfiguration
            SetHomePosition SetPreset Stop""",
    },
    Service.IMAGING: {
        PRE_AUTH: "GetServiceCapabilities",
        READ_MEDIA: """GetCurrentPreset GetImagingSettings GetMoveOptions GetOptions
            GetPresets GetStatus""",
        ACTUATE: "Move SetCurrentPreset SetImagingSettings Stop",
    },
    Service.EVENTS: {
        PRE_AUTH: "GetServiceCapabilities",
        # Core classes every subscription and pull point operation it describes as READ_MEDIA;
        # the WS-BaseNotification ones it leaves silent (Subscribe, pausing, the basic pull
        # point) follow them.
        READ_MEDIA: """CreatePullPoint CreatePullPointSubscription DestroyPullPoint
            GetCurrentMessage GetEventBrokers GetEventProperties GetMessages Notify
            PauseSubscription PullMessages Renew ResumeSubscription Seek
            SetSynchronizationPoint Subscribe Unsubscribe""",
        WRITE_SYSTEM: "AddEventBroker DeleteEventBroker",
    },
    Service.DEVICEIO: {
        # DeviceIO states GetRelayOutputOptions as PRE_AUTH.
        PRE_AUTH: "GetRelayOutputOptions GetServiceCapabilities",
        READ_SYSTEM: """GetDigitalInputConfigurationOptions GetDigitalInputs
            GetSerialPortConfiguration GetSerialPortConfigurationOptions GetSerialPorts""",
        READ_MEDIA: """GetAudioOutputConfiguration GetAudioOutputConfigurationOptions
            GetAudioOutputs GetAudioSourceConfiguration GetAudioSourceConfigurationOptions
            GetAudioSources GetRelayOutputs GetVideoOutputConfiguration
            GetVideoOutputConfigurationOptions GetVideoOutputs GetVideoSourceConfiguration
            GetVideoSourceConfigurationOptions GetVideoSources""",
        ACTUATE: """SendReceiveSerialCommand SetAudioOutputConfiguration
            SetAudioSourceConfiguration SetDigitalInputConfigurations SetRelayOutputSettings
            SetRelayOutputState SetSerialPortConfiguration SetVideoOutputConfiguration
            SetVideoSourceConfiguration""",
    },
}


def _flatten() -> dict[tuple[Service, str], AccessClass]:
    table: dict[tuple[Service, str], AccessClass] = {}
    for service, classes in _CLASSES.items():
        for access, names in classes.items():
            for name in names.split():
                if (service, name) in table:
                    raise ValueError(f"{service.name} {name} is in two access classes")
                table[service, name] = access
    return table


ACCESS_CLASSES: Final[Mapping[tuple[Service, str], AccessClass]] = _flatten()
PRE_AUTH_OPERATIONS: Final = frozenset(key for key, c in ACCESS_CLASSES.items() if c is PRE_AUTH)


def access_class(service: Service, operation: str) -> AccessClass | None:
    """The operation's access class; None for one the table does not know (refused to all)."""
    return ACCESS_CLASSES.get((service, operation))


def is_pre_auth(service: Service, operation: str) -> bool:
    return access_class(service, operation) is PRE_AUTH


def check_access(service: Service, operation: str, level: UserLevel | None) -> None:
    """Raise ter:NotAuthorized unless a user of ``level`` (None: anonymous) may call it."""
    access = access_class(service, operation)
    if access is None or access not in POLICY[level]:
        who = "an anonymous client" if level is None else f"a user of level {level}"
        raise NotAuthorized(f"{operation} is not allowed for {who}")
