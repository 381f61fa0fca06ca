// Time-weighted trend of one sensor for the whole fleet, a zone or a country, from the
// per-group hourly rollup: what fleet-wide lines read, whatever the fleet's size.
//
// Answers: how did `field` (temperature, humidity or fan_pwm_duty) evolve across the fleet
// (or per zone or country) at windows of one hour or more? Reads `group_hourly_stats`,
// which the hourly task writes (hourly_stats.flux, toGroups()): per hour, zone and country
// the sum of avg * covered_seconds over the devices (`weighted_<field>`) and their live time
// (`covered_seconds`). A window's mean is sum(weighted) / sum(covered): exactly what
// fleet_hourly.flux computes from the device rows, but from a few rows per hour instead of
// one per device. Hours the task has not processed yet (the current one and, until about
// 5 minutes past, the previous one) have no rows.
//
// Output, one row per group and window (at the window's start): `_value` the time-weighted
// mean, `covered_seconds`, `devices` (the most devices live in one hour of the window),
// `_field`, and the `by` tags.
//
// Parameters:
//   hourly_bucket  string                  bucket of group_hourly_stats
//   start          time     = -7d          first instant of the period (on the hour)
//   stop           time     = now          end of the period (exclusive)
//   window         duration = 1h           window width, whole hours
//   field          string   = "temperature"  temperature, humidity, fan_pwm_duty
//   zone           string   = ""           only this zone; "" for all
//   country        string   = ""           only this country; "" for all
//   by             string   = ""           "zone", "country", "zone,country"; "" for one line

import "strings"

// Tag filters that InfluxDB pushes down to storage: a parameter test inside the
// predicate (`params.zone == "" or ...`) or contains() would make it read every series.
byZone = if params.zone == "" then (r) => true else (r) => r.zone == params.zone
byCountry = if params.country == "" then (r) => true else (r) => r.country == params.country

// The `by` tags and _field: each sum below is one series per group and field.
keys = strings.split(v: if params.by == "" then "_field" else params.by + ",_field", t: ",")
weighted = "weighted_" + params.field

rows =
    from(bucket: params.hourly_bucket)
        |> range(start: params.start, stop: params.stop)
        |> filter(fn: (r) => r._measurement == "group_hourly_stats")
        |> filter(
            fn: (r) =>
                r._field == weighted or r._field == "covered_seconds" or r._field == "devices",
        )
        |> filter(fn: byZone)
        |> filter(fn: byCountry)

// Plain sums per window (aggregateWindow runs them columnar, no row-by-row function): the
// weighted values and the covered seconds of every group and hour in it ...
sums =
    rows
        |> filter(fn: (r) => r._field != "devices")
        |> group(columns: keys)
        |> aggregateWindow(every: params.window, fn: sum, timeSrc: "_start", createEmpty: false)

// ... and the most devices live at once: summed over the groups of each hour, then the
// window's largest hour.
live =
    rows
        |> filter(fn: (r) => r._field == "devices")
        |> group(columns: keys)
        |> aggregateWindow(every: 1h, fn: sum, timeSrc: "_start", createEmpty: false)
        |> aggregateWindow(every: params.window, fn: max, timeSrc: "_start", createEmpty: false)
        |> map(fn: (r) => ({r with _value: float(v: r._value)}))

union(tables: [sums, live])
    |> map(fn: (r) => ({r with _field: if r._field == weighted then "weighted" else r._field}))
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> filter(fn: (r) => exists r.weighted and r.covered_seconds > 0.0)
    |> map(
        fn: (r) =>
            ({r with
                _field: params.field,
                _value: r.weighted / r.covered_seconds,
                devices: int(v: r.devices),
            }),
    )
    |> drop(columns: ["weighted", "_start", "_stop"])
    |> sort(columns: ["_time"])
