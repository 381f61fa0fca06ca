// Time-weighted trend of one metric of a metric history from its hourly downsample, for long
// ranges (weeks to months).
//
// Answers: how did `metric` of a metric history (`source`: telemetry, or a robot part such
// as battery or servos) evolve for a device or a group over a long period, at windows of one
// hour or more? Reads `metric_hourly_stats` (written by the hourly task, metric_hourly.flux),
// whose `avg` is already the time-weighted mean of the step function over the hour's live
// time `covered_seconds`. A window combines its hours weighted by that covered time, so the
// result equals the sensor_trend.flux mean over the raw points (up to the hour boundaries).
//
// Output, one row per group and window (at the window's start): `_value` the time-weighted
// mean, `covered_seconds`, `devices` (series that contributed), `_field` (the metric), and
// the `by` tags.
//
// Parameters:
//   hourly_bucket  string                          bucket of metric_hourly_stats
//   start          time     = -30d                 first instant of the period
//   stop           time     = now                  end of the period (exclusive)
//   window         duration = 1d                   window width, whole hours
//   source         string   = "telemetry"          the raw measurement (telemetry, battery, ...)
//   metric         string                          the declared metric
//   device_type    string   = ""                   only devices of this type; "" all
//   hostnames      string   = ""                   comma-separated devices; "" for all
//   by             string   = "device_id,hostname" tags of one series; "" for one

import "experimental"
import "strings"
import "regexp"

// Tag filters that InfluxDB pushes down to storage (see sensor_trend.flux).
hostPattern =
    regexp.compile(
        v: "^(" + strings.replaceAll(v: regexp.quoteMeta(v: params.hostnames), t: ",", u: "|") + ")$",
    )
byHost = if params.hostnames == "" then (r) => true else (r) => r.hostname =~ hostPattern
byType =
    if params.device_type == "" then
        (r) => true
    else
        (r) => r.device_type == params.device_type

by = if params.by == "" then [] else strings.split(v: params.by, t: ",")

from(bucket: params.hourly_bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._measurement == "metric_hourly_stats")
    |> filter(fn: (r) => r.source == params.source and r.metric == params.metric)
    |> filter(fn: (r) => r._field == "avg" or r._field == "covered_seconds")
    |> filter(fn: byType)
    |> filter(fn: byHost)
    |> map(fn: (r) => ({r with _field: if r._field == "avg" then "value" else "covered"}))
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> filter(fn: (r) => exists r.value and exists r.covered and r.covered > 0.0)
    // Each series' hours into windows ...
    |> window(every: params.window)
    |> reduce(
        identity: {weighted: 0.0, covered: 0.0},
        fn: (r, accumulator) =>
            ({
                weighted: accumulator.weighted + r.value * r.covered,
                covered: accumulator.covered + r.covered,
            }),
    )
    |> map(fn: (r) => ({r with _time: r._start, _value: r.weighted / r.covered}))
    // ... then the series of each `by` group together, each weighted by its covered time.
    |> group(columns: by)
    |> experimental.group(columns: ["_time"], mode: "extend")
    |> reduce(
        identity: {weighted: 0.0, covered: 0.0, devices: 0},
        fn: (r, accumulator) =>
            ({
                weighted: accumulator.weighted + r._value * r.covered,
                covered: accumulator.covered + r.covered,
                devices: accumulator.devices + 1,
            }),
    )
    |> map(
        fn: (r) =>
            ({r with _field: params.metric, _value: r.weighted / r.covered, covered_seconds: r.covered}),
    )
    |> drop(columns: ["weighted", "covered"])
    |> group(columns: by)
    |> sort(columns: ["_time"])
