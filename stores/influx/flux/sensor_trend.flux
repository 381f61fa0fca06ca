// Time-weighted trend of one field of a CDC history, per device or per group, at a window.
//
// Answers: how did `field` (temperature, humidity, fan_pwm_duty, or a boolean such as siren,
// read as the fraction of time it was on; or a telemetry metric such as vibration) evolve
// for a device or a group over the period? Reads the raw CDC-thinned history of
// `measurement` (`heartbeat` of panels, `telemetry` of devices of declared types), for
// ranges of up to a week or so; longer panel ranges read the hourly downsample
// (fleet_hourly.flux).
//
// The stored series is a step function: each point's value holds until the device's next
// point (the CDC keeps it within its dead band of every heartbeat received). So:
// * each value is weighted by how long it held inside the window (events.duration), never a
//   plain mean of the points (a burst of changes would outweigh a quiet hour) nor
//   timeWeightedAvg() (it interpolates linearly between points and returns 0, not null, for
//   an empty window);
// * the value in force when a window opens is carried into it, even through windows with
//   no point at all: aggregateWindow(fn: last, createEmpty: true) |> fill(usePrevious: true)
//   gives the last value before every window boundary (filling the last *value*, not the
//   previous window's mean), and the read starts `carry` before `start` for the first one;
// * a stretch that starts with an offline marker (is_online false) counts for nothing until
//   the device's next point: a window without live values has no row.
//
// Output, one row per group and window (at the window's start): `_value` the time-weighted
// mean, `covered_seconds` the device-seconds with live values behind it, `devices` how many
// devices contributed, `_field` the field, plus the `by` tags. A group's mean weights each
// device by its covered time.
//
// Parameters:
//   bucket     string                                        raw heartbeat bucket
//   start      time     = -24h                               first instant of the period
//   stop       time     = now                                end of the period (exclusive)
//   window     duration = 1h                                 width of each window
//   field      string   = "temperature"                      field to average
//   measurement string  = "heartbeat"                        heartbeat or telemetry
//   device_type string  = ""                                 only devices of this type; "" all
//   hostnames  string   = ""                                 comma-separated devices; "" for all
//   zone       string   = ""                                 only this zone; "" for all
//   country    string   = ""                                 only this country; "" for all
//   by         string   = "device_id,hostname,zone,country"  tags of one series; "" for one
//   carry      duration = 10m                                how far before a window to look
//                                                            for the value in force

import "contrib/tomhollingworth/events"
import "date"
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
byType =
    if params.device_type == "" then
        (r) => true
    else
        (r) => r.device_type == params.device_type

by = if params.by == "" then [] else strings.split(v: params.by, t: ",")

selected =
    from(bucket: params.bucket)
        |> range(start: date.sub(d: params.carry, from: params.start), stop: params.stop)
        |> filter(fn: (r) => r._measurement == params.measurement)
        |> filter(fn: (r) => r._field == params.field or r._field == "is_online")
        |> filter(fn: byZone)
        |> filter(fn: byCountry)
        |> filter(fn: byHost)
        |> filter(fn: byType)

// One row per point: `value` (the field as a float; a boolean is 1.0 or 0.0) and `live`.
points =
    selected
        |> map(
            fn: (r) =>
                ({r with
                    _field: if r._field == "is_online" then "live" else "value",
                    _value: float(v: r._value),
                }),
        )
        |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
        |> filter(fn: (r) => exists r.value)
        |> drop(columns: ["_start", "_stop"])

// Carried rows (src 0): the value in force at `start` and at every later window boundary.
atStart =
    points
        |> filter(fn: (r) => r._time < params.start)
        |> last(column: "value")
        |> map(fn: (r) => ({r with _time: params.start, src: 0}))

atBoundaries =
    points
        |> aggregateWindow(every: params.window, fn: last, column: "value", createEmpty: true)
        |> fill(column: "value", usePrevious: true)
        |> fill(column: "live", usePrevious: true)
        |> filter(fn: (r) => r._time > params.start and r._time < params.stop and exists r.value)
        |> drop(columns: ["_start", "_stop"])
        |> map(fn: (r) => ({r with src: 0}))

inside = points |> filter(fn: (r) => r._time >= params.start) |> map(fn: (r) => ({r with src: 1}))

perDevice =
    union(tables: [atStart, atBoundaries, inside])
        // One table per device again; at equal times the carried row comes first, so a
        // point stamped exactly on a boundary replaces it after zero seconds.
        |> group(columns: ["_time", "value", "live", "src"], mode: "except")
        |> sort(columns: ["_time", "src"])
        |> range(start: params.start, stop: params.stop)
        |> window(every: params.window)
        // held: nanoseconds until the next row, or until the window's end for the last.
        |> events.duration(unit: 1ns, columnName: "held", stopColumn: "_stop")
        |> map(
            fn: (r) =>
                ({r with
                    weight:
                        if exists r.live and r.live == 0.0 then
                            0.0
                        else
                            float(v: r.held) / 1000000000.0,
                }),
        )
        |> reduce(
            identity: {weighted: 0.0, covered: 0.0},
            fn: (r, accumulator) =>
                ({
                    weighted: accumulator.weighted + r.value * r.weight,
                    covered: accumulator.covered + r.weight,
                }),
        )
        |> filter(fn: (r) => r.covered > 0.0)
        |> map(fn: (r) => ({r with _time: r._start, _value: r.weighted / r.covered}))

// Combine the devices of each `by` group and window, weighting each by its covered time.
perDevice
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
