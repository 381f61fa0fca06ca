// Alarm state changes as InfluxDB stored them: one row per accepted AlarmEvent.
//
// Answers: which alarms and output patterns changed state, where and when, in the period
// (for the event log with resolution and acknowledgement, use the alarm reports, which read
// PostgreSQL)? `event_state` ACTIVE/STARTING opens, INACTIVE closes, TEST is a test;
// OUTPUT_EVENT rows are siren (output_type 1) and turret (2) patterns.
//
// Parameters:
//   bucket      string              raw heartbeat bucket (it holds the alarm measurement)
//   start       time     = -7d      first instant of the period
//   stop        time     = now      end of the period (exclusive)
//   alarm_type  string   = ""       PANIC1, PANIC2, TAMPER, ..., OUTPUT_EVENT; "" for all
//   hostnames   string   = ""       comma-separated devices; "" for all
//   zone        string   = ""       only this zone; "" for all
//   country     string   = ""       only this country; "" for all

import "strings"
import "regexp"

// Tag filters that InfluxDB pushes down to storage: a parameter test inside the
// predicate (`params.zone == "" or ...`) or contains() would make it read every series.
byZone = if params.zone == "" then (r) => true else (r) => r.zone == params.zone
byCountry = if params.country == "" then (r) => true else (r) => r.country == params.country
byAlarmType =
    if params.alarm_type == "" then (r) => true else (r) => r.alarm_type == params.alarm_type
// hostnames "A,B" -> /^(A|B)$/, each name matched literally.
hostPattern =
    regexp.compile(
        v: "^(" + strings.replaceAll(v: regexp.quoteMeta(v: params.hostnames), t: ",", u: "|") + ")$",
    )
byHost = if params.hostnames == "" then (r) => true else (r) => r.hostname =~ hostPattern

from(bucket: params.bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._measurement == "alarm")
    |> filter(fn: byAlarmType)
    |> filter(fn: byZone)
    |> filter(fn: byCountry)
    |> filter(fn: byHost)
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> drop(columns: ["_start", "_stop", "_measurement"])
    |> group()
    |> sort(columns: ["_time"])
