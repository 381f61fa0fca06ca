from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusMessage(_message.Message):
    __slots__ = ("mac_address", "device_db_id", "hostname", "firmware", "partition", "ota_validated", "uptime", "boot_count", "state", "state_duration", "free_heap", "min_heap", "network", "ip_address", "rssi", "connected", "has_ip", "mqtt_connected", "ntp_synced", "last_ntp_sync", "panic1", "panic2", "box_sw", "siren", "turret", "panic1_count", "panic2_count", "tamper_count", "wifi_disconnects", "mqtt_disconnects", "error_count", "temperature", "humidity", "error_flags", "country", "zone", "latitude", "longitude", "timestamp")
    class DeviceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        BOOT: _ClassVar[StatusMessage.DeviceState]
        INIT: _ClassVar[StatusMessage.DeviceState]
        CONNECTING: _ClassVar[StatusMessage.DeviceState]
        NORMAL: _ClassVar[StatusMessage.DeviceState]
        ALARM: _ClassVar[StatusMessage.DeviceState]
        MAINTENANCE: _ClassVar[StatusMessage.DeviceState]
        ERROR: _ClassVar[StatusMessage.DeviceState]
        CRITICAL: _ClassVar[StatusMessage.DeviceState]
        OFFLINE: _ClassVar[StatusMessage.DeviceState]
        UNKNOWN: _ClassVar[StatusMessage.DeviceState]
    BOOT: StatusMessage.DeviceState
    INIT: StatusMessage.DeviceState
    CONNECTING: StatusMessage.DeviceState
    NORMAL: StatusMessage.DeviceState
    ALARM: StatusMessage.DeviceState
    MAINTENANCE: StatusMessage.DeviceState
    ERROR: StatusMessage.DeviceState
    CRITICAL: StatusMessage.DeviceState
    OFFLINE: StatusMessage.DeviceState
    UNKNOWN: StatusMessage.DeviceState
    class NetworkType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NETWORK_WIFI: _ClassVar[StatusMessage.NetworkType]
        NETWORK_ETHERNET: _ClassVar[StatusMessage.NetworkType]
        NETWORK_NONE: _ClassVar[StatusMessage.NetworkType]
    NETWORK_WIFI: StatusMessage.NetworkType
    NETWORK_ETHERNET: StatusMessage.NetworkType
    NETWORK_NONE: StatusMessage.NetworkType
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_DB_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OTA_VALIDATED_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    BOOT_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_DURATION_FIELD_NUMBER: _ClassVar[int]
    FREE_HEAP_FIELD_NUMBER: _ClassVar[int]
    MIN_HEAP_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RSSI_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    HAS_IP_FIELD_NUMBER: _ClassVar[int]
    MQTT_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    NTP_SYNCED_FIELD_NUMBER: _ClassVar[int]
    LAST_NTP_SYNC_FIELD_NUMBER: _ClassVar[int]
    PANIC1_FIELD_NUMBER: _ClassVar[int]
    PANIC2_FIELD_NUMBER: _ClassVar[int]
    BOX_SW_FIELD_NUMBER: _ClassVar[int]
    SIREN_FIELD_NUMBER: _ClassVar[int]
    TURRET_FIELD_NUMBER: _ClassVar[int]
    PANIC1_COUNT_FIELD_NUMBER: _ClassVar[int]
    PANIC2_COUNT_FIELD_NUMBER: _ClassVar[int]
    TAMPER_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIFI_DISCONNECTS_FIELD_NUMBER: _ClassVar[int]
    MQTT_DISCONNECTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    HUMIDITY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FLAGS_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    mac_address: str
    device_db_id: int
    hostname: str
    firmware: str
    partition: int
    ota_validated: bool
    uptime: int
    boot_count: int
    state: StatusMessage.DeviceState
    state_duration: int
    free_heap: int
    min_heap: int
    network: StatusMessage.NetworkType
    ip_address: str
    rssi: int
    connected: bool
    has_ip: bool
    mqtt_connected: bool
    ntp_synced: bool
    last_ntp_sync: int
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    panic1_count: int
    panic2_count: int
    tamper_count: int
    wifi_disconnects: int
    mqtt_disconnects: int
    error_count: int
    temperature: float
    humidity: float
    error_flags: int
    country: str
    zone: int
    latitude: float
    longitude: float
    timestamp: int
    def __init__(self, mac_address: _Optional[str] = ..., device_db_id: _Optional[int] = ..., hostname: _Optional[str] = ..., firmware: _Optional[str] = ..., partition: _Optional[int] = ..., ota_validated: _Optional[bool] = ..., uptime: _Optional[int] = ..., boot_count: _Optional[int] = ..., state: _Optional[_Union[StatusMessage.DeviceState, str]] = ..., state_duration: _Optional[int] = ..., free_heap: _Optional[int] = ..., min_heap: _Optional[int] = ..., network: _Optional[_Union[StatusMessage.NetworkType, str]] = ..., ip_address: _Optional[str] = ..., rssi: _Optional[int] = ..., connected: _Optional[bool] = ..., has_ip: _Optional[bool] = ..., mqtt_connected: _Optional[bool] = ..., ntp_synced: _Optional[bool] = ..., last_ntp_sync: _Optional[int] = ..., panic1: _Optional[bool] = ..., panic2: _Optional[bool] = ..., box_sw: _Optional[bool] = ..., siren: _Optional[bool] = ..., turret: _Optional[bool] = ..., panic1_count: _Optional[int] = ..., panic2_count: _Optional[int] = ..., tamper_count: _Optional[int] = ..., wifi_disconnects: _Optional[int] = ..., mqtt_disconnects: _Optional[int] = ..., error_count: _Optional[int] = ..., temperature: _Optional[float] = ..., humidity: _Optional[float] = ..., error_flags: _Optional[int] = ..., country: _Optional[str] = ..., zone: _Optional[int] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., timestamp: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("mac_address", "device_db_id", "firmware", "uptime", "panic1", "panic2", "box_sw", "siren", "turret", "temperature", "humidity", "fan_pwm_duty", "eth_interface", "timestamp")
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_DB_ID_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    PANIC1_FIELD_NUMBER: _ClassVar[int]
    PANIC2_FIELD_NUMBER: _ClassVar[int]
    BOX_SW_FIELD_NUMBER: _ClassVar[int]
    SIREN_FIELD_NUMBER: _ClassVar[int]
    TURRET_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    HUMIDITY_FIELD_NUMBER: _ClassVar[int]
    FAN_PWM_DUTY_FIELD_NUMBER: _ClassVar[int]
    ETH_INTERFACE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    mac_address: str
    device_db_id: int
    firmware: str
    uptime: int
    panic1: bool
    panic2: bool
    box_sw: bool
    siren: bool
    turret: bool
    temperature: float
    humidity: float
    fan_pwm_duty: int
    eth_interface: int
    timestamp: int
    def __init__(self, mac_address: _Optional[str] = ..., device_db_id: _Optional[int] = ..., firmware: _Optional[str] = ..., uptime: _Optional[int] = ..., panic1: _Optional[bool] = ..., panic2: _Optional[bool] = ..., box_sw: _Optional[bool] = ..., siren: _Optional[bool] = ..., turret: _Optional[bool] = ..., temperature: _Optional[float] = ..., humidity: _Optional[float] = ..., fan_pwm_duty: _Optional[int] = ..., eth_interface: _Optional[int] = ..., timestamp: _Optional[int] = ...) -> None: ...

class AlarmEvent(_message.Message):
    __slots__ = ("mac_address", "device_db_id", "sequence", "timestamp", "type", "state", "priority", "physical_state", "output_type", "pattern_type", "duration_seconds", "elapsed_seconds")
    class AlarmType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[AlarmEvent.AlarmType]
        PANIC1: _ClassVar[AlarmEvent.AlarmType]
        PANIC2: _ClassVar[AlarmEvent.AlarmType]
        TAMPER: _ClassVar[AlarmEvent.AlarmType]
        FIRE: _ClassVar[AlarmEvent.AlarmType]
        INTRUSION: _ClassVar[AlarmEvent.AlarmType]
        MEDICAL: _ClassVar[AlarmEvent.AlarmType]
        DURESS: _ClassVar[AlarmEvent.AlarmType]
        OUTPUT_EVENT: _ClassVar[AlarmEvent.AlarmType]
    UNKNOWN: AlarmEvent.AlarmType
    PANIC1: AlarmEvent.AlarmType
    PANIC2: AlarmEvent.AlarmType
    TAMPER: AlarmEvent.AlarmType
    FIRE: AlarmEvent.AlarmType
    INTRUSION: AlarmEvent.AlarmType
    MEDICAL: AlarmEvent.AlarmType
    DURESS: AlarmEvent.AlarmType
    OUTPUT_EVENT: AlarmEvent.AlarmType
    class EventState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        INACTIVE: _ClassVar[AlarmEvent.EventState]
        ACTIVE: _ClassVar[AlarmEvent.EventState]
        TEST: _ClassVar[AlarmEvent.EventState]
        STARTING: _ClassVar[AlarmEvent.EventState]
        STOPPING: _ClassVar[AlarmEvent.EventState]
    INACTIVE: AlarmEvent.EventState
    ACTIVE: AlarmEvent.EventState
    TEST: AlarmEvent.EventState
    STARTING: AlarmEvent.EventState
    STOPPING: AlarmEvent.EventState
    class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        LOW: _ClassVar[AlarmEvent.Priority]
        MEDIUM: _ClassVar[AlarmEvent.Priority]
        HIGH: _ClassVar[AlarmEvent.Priority]
        CRITICAL: _ClassVar[AlarmEvent.Priority]
    LOW: AlarmEvent.Priority
    MEDIUM: AlarmEvent.Priority
    HIGH: AlarmEvent.Priority
    CRITICAL: AlarmEvent.Priority
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_DB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_STATE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_TYPE_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    mac_address: str
    device_db_id: int
    sequence: int
    timestamp: int
    type: AlarmEvent.AlarmType
    state: AlarmEvent.EventState
    priority: AlarmEvent.Priority
    physical_state: bool
    output_type: int
    pattern_type: int
    duration_seconds: int
    elapsed_seconds: int
    def __init__(self, mac_address: _Optional[str] = ..., device_db_id: _Optional[int] = ..., sequence: _Optional[int] = ..., timestamp: _Optional[int] = ..., type: _Optional[_Union[AlarmEvent.AlarmType, str]] = ..., state: _Optional[_Union[AlarmEvent.EventState, str]] = ..., priority: _Optional[_Union[AlarmEvent.Priority, str]] = ..., physical_state: _Optional[bool] = ..., output_type: _Optional[int] = ..., pattern_type: _Optional[int] = ..., duration_seconds: _Optional[int] = ..., elapsed_seconds: _Optional[int] = ...) -> None: ...

class SetDeviceId(_message.Message):
    __slots__ = ("device_db_id",)
    DEVICE_DB_ID_FIELD_NUMBER: _ClassVar[int]
    device_db_id: int
    def __init__(self, device_db_id: _Optional[int] = ...) -> None: ...

class Reboot(_message.Message):
    __slots__ = ("delay_ms",)
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    delay_ms: int
    def __init__(self, delay_ms: _Optional[int] = ...) -> None: ...

class OutputControl(_message.Message):
    __slots__ = ("output", "pattern", "duration_seconds", "on")
    class OutputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTPUT_KIND_UNSPECIFIED: _ClassVar[OutputControl.OutputKind]
        SIREN: _ClassVar[OutputControl.OutputKind]
        TURRET: _ClassVar[OutputControl.OutputKind]
    OUTPUT_KIND_UNSPECIFIED: OutputControl.OutputKind
    SIREN: OutputControl.OutputKind
    TURRET: OutputControl.OutputKind
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    output: OutputControl.OutputKind
    pattern: int
    duration_seconds: int
    on: bool
    def __init__(self, output: _Optional[_Union[OutputControl.OutputKind, str]] = ..., pattern: _Optional[int] = ..., duration_seconds: _Optional[int] = ..., on: _Optional[bool] = ...) -> None: ...

class ConfigUpdate(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, str]
    def __init__(self, values: _Optional[_Mapping[str, str]] = ...) -> None: ...

class OtaUpdate(_message.Message):
    __slots__ = ("url", "version", "sha256")
    URL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    url: str
    version: str
    sha256: str
    def __init__(self, url: _Optional[str] = ..., version: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class Diagnostic(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: str
    def __init__(self, action: _Optional[str] = ...) -> None: ...

class CommandEnvelope(_message.Message):
    __slots__ = ("request_id", "sequence", "timestamp", "type", "auth_level", "set_device_id", "reboot", "output_control", "config_update", "ota_update", "diagnostic")
    class CommandType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[CommandEnvelope.CommandType]
        SYSTEM: _ClassVar[CommandEnvelope.CommandType]
        CONFIG: _ClassVar[CommandEnvelope.CommandType]
        OUTPUT: _ClassVar[CommandEnvelope.CommandType]
        DIAGNOSTIC: _ClassVar[CommandEnvelope.CommandType]
        OTA: _ClassVar[CommandEnvelope.CommandType]
    UNKNOWN: CommandEnvelope.CommandType
    SYSTEM: CommandEnvelope.CommandType
    CONFIG: CommandEnvelope.CommandType
    OUTPUT: CommandEnvelope.CommandType
    DIAGNOSTIC: CommandEnvelope.CommandType
    OTA: CommandEnvelope.CommandType
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AUTH_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SET_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REBOOT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CONTROL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_UPDATE_FIELD_NUMBER: _ClassVar[int]
    OTA_UPDATE_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTIC_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    sequence: int
    timestamp: int
    type: CommandEnvelope.CommandType
    auth_level: int
    set_device_id: SetDeviceId
    reboot: Reboot
    output_control: OutputControl
    config_update: ConfigUpdate
    ota_update: OtaUpdate
    diagnostic: Diagnostic
    def __init__(self, request_id: _Optional[str] = ..., sequence: _Optional[int] = ..., timestamp: _Optional[int] = ..., type: _Optional[_Union[CommandEnvelope.CommandType, str]] = ..., auth_level: _Optional[int] = ..., set_device_id: _Optional[_Union[SetDeviceId, _Mapping]] = ..., reboot: _Optional[_Union[Reboot, _Mapping]] = ..., output_control: _Optional[_Union[OutputControl, _Mapping]] = ..., config_update: _Optional[_Union[ConfigUpdate, _Mapping]] = ..., ota_update: _Optional[_Union[OtaUpdate, _Mapping]] = ..., diagnostic: _Optional[_Union[Diagnostic, _Mapping]] = ...) -> None: ...

class CommandResponse(_message.Message):
    __slots__ = ("request_id", "sequence", "timestamp", "stage", "success", "response_code", "error_message", "data")
    class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STAGE_UNSPECIFIED: _ClassVar[CommandResponse.Stage]
        ACKNOWLEDGED: _ClassVar[CommandResponse.Stage]
        COMPLETED: _ClassVar[CommandResponse.Stage]
    STAGE_UNSPECIFIED: CommandResponse.Stage
    ACKNOWLEDGED: CommandResponse.Stage
    COMPLETED: CommandResponse.Stage
    class DataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    sequence: int
    timestamp: int
    stage: CommandResponse.Stage
    success: bool
    response_code: int
    error_message: str
    data: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., sequence: _Optional[int] = ..., timestamp: _Optional[int] = ..., stage: _Optional[_Union[CommandResponse.Stage, str]] = ..., success: _Optional[bool] = ..., response_code: _Optional[int] = ..., error_message: _Optional[str] = ..., data: _Optional[_Mapping[str, str]] = ...) -> None: ...
