// Heartbeat points stored per day (UTC) by change_type, from the hourly downsample.
//
// Answers: how many points did the CDC store each day and why (PERIODIC, SENSOR_DATA,
// ALARM, STATE_CHANGE, CONNECTION, MULTIPLE), for the fleet, a zone, a country or some
// devices? The hourly task counts each device's points by change type
// (device_hourly_stats.points_*) and sums them per zone and country
// (group_hourly_stats.points_*): the fleet reads the few group rows, picked devices their
// own rows, so neither scans the raw points (cdc_points_per_day.flux does, exactly but
// slowly on a large fleet). Hours not yet downsampled (the current one) are not counted.
//
// Parameters:
//   hourly_bucket  string              bucket of the hourly downsample
//   start          time     = -30d     first instant of the period (days start at 00:00 UTC)
//   stop           time     = now      end of the period (exclusive)
//   hostnames      string   = ""       comma-separated devices; "" for all
//   zone           string   = ""       only this zone; "" for all
//   country        string   = ""       only this country; "" for all

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

measurement = if params.hostnames == "" then "group_hourly_stats" else "device_hourly_stats"

from(bucket: params.hourly_bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._measurement == measurement)
    |> filter(fn: byZone)
    |> filter(fn: byCountry)
    |> filter(fn: byHost)
    // Equality tests, not strings.hasPrefix(): InfluxDB pushes them (and the filters before
    // them) down to storage.
    |> filter(
        fn: (r) =>
            r._field == "points_periodic" or r._field == "points_sensor_data"
                or r._field == "points_alarm" or r._field == "points_state_change"
                or r._field == "points_connection" or r._field == "points_multiple",
    )
    // Sum first (columnar), name the change types after: 6 rows a day, not one per group-hour.
    |> group(columns: ["_field"])
    |> aggregateWindow(every: 1d, fn: sum, timeSrc: "_start", createEmpty: true)
    |> fill(value: 0)
    |> map(
        fn: (r) =>
            ({
                _time: r._time,
                change_type: strings.toUpper(v: strings.trimPrefix(v: r._field, prefix: "points_")),
                points: r._value,
            }),
    )
    |> group(columns: ["change_type"])
