// Time-weighted trend of one sensor per device or per group from the hourly downsample, for
// long ranges (weeks to months).
//
// Answers: how did `field` (temperature, humidity or fan_pwm_duty) evolve for a device or a
// group over a long period, at windows of one hour or more? Reads `device_hourly_stats`
// (written by the hourly task, hourly_stats.flux), whose `avg_<field>` is already the
// time-weighted mean of the step function over the hour's live time `covered_seconds`. A
// window combines its hours weighted by that covered time, so the result equals the
// sensor_trend.flux mean over the raw points (up to the hour boundaries); plain means of the
// hourly averages would over-weight hours in which a device was mostly offline.
//
// Output, one row per group and window (at the window's start): `_value` the time-weighted
// mean, `covered_seconds`, `devices` (devices that contributed), `_field`, and the `by` tags.
//
// Parameters:
//   hourly_bucket  string                                        bucket of device_hourly_stats
//   start          time     = -30d                               first instant of the period
//   stop           time     = now                                end of the period (exclusive)
//   window         duration = 1d                                 window width, whole hours
//   field          string   = "temperature"                      temperature, humidity, fan_pwm_duty
//   hostnames      string   = ""                                 comma-separated devices; "" for all
//   zone           string   = ""                                 only this zone; "" for all
//   country        string   = ""                                 only this country; "" for all
//   by             string   = "device_id,hostname,zone,country"  tags of one series; "" for one

import "experimental"
import "strings"
import "regexp"

// Tag filters that InfluxDB pushes down to storage: a parameter test inside the
// predicate (`params.zone == "" or ...`) or contains() would make it read every series.
byZone = if params.zone == "" then (r) => true else (r) => r.zone == params.zone
byCountry = if params.country == "" then (r) => true else (r) => r.country == params.country
// hostnames "A,B" -> /^(A|B)$/, each name matched literally.
hostPattern =
    regexp.compile(
        v: "^(" + strings.replaceAll(v: regexp.quoteMeta(v: params.hostnames), t: ",", u: "|") + ")$",
    )
byHost = if params.hostnames == "" then (r) => true else (r) => r.hostname =~ hostPattern

by = if params.by == "" then [] else strings.split(v: params.by, t: ",")
average = "avg_" + params.field

from(bucket: params.hourly_bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._measurement == "device_hourly_stats")
    |> filter(fn: (r) => r._field == average or r._field == "covered_seconds")
    |> filter(fn: byZone)
    |> filter(fn: byCountry)
    |> filter(fn: byHost)
    |> map(
        fn: (r) =>
            ({r with
                _field: if r._field == average then "value" else "covered",
                _value: float(v: r._value),
            }),
    )
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> filter(fn: (r) => exists r.value and exists r.covered and r.covered > 0.0)
    // Each device's hours into windows ...
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
    // ... then the devices of each `by` group together, each weighted by its covered time.
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
            ({r with _field: params.field, _value: r.weighted / r.covered, covered_seconds: r.covered}),
    )
    |> drop(columns: ["weighted", "covered"])
    |> group(columns: by)
    |> sort(columns: ["_time"])
