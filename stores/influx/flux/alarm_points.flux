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

hostnames = strings.split(v: params.hostnames, t: ",")

from(bucket: params.bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._measurement == "alarm")
    |> filter(fn: (r) => params.alarm_type == "" or r.alarm_type == params.alarm_type)
    |> filter(fn: (r) => params.zone == "" or r.zone == params.zone)
    |> filter(fn: (r) => params.country == "" or r.country == params.country)
    |> filter(fn: (r) => params.hostnames == "" or contains(value: r.hostname, set: hostnames))
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> drop(columns: ["_start", "_stop", "_measurement"])
    |> group()
    |> sort(columns: ["_time"])
