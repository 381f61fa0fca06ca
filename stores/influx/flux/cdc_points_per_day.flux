// Heartbeat points the CDC stored per day (UTC), by why they were written (change_type).
//
// Answers: how many points reached InfluxDB each day and for what reason (PERIODIC,
// SENSOR_DATA, ALARM, STATE_CHANGE, CONNECTION, MULTIPLE)? Compare with the heartbeats
// received (the CDC storage report, from PostgreSQL's heartbeat_counts) to see the savings,
// or with its points written to check that nothing is stuck in the outbox. A day without
// points of a kind has a 0.
//
// Parameters:
//   bucket      string              raw heartbeat bucket
//   start       time     = -30d     first instant of the period (days start at 00:00 UTC)
//   stop        time     = now      end of the period (exclusive)
//   per_device  bool     = false    one series per device and change type, not per type
//   hostnames   string   = ""       comma-separated devices; "" for all
//   zone        string   = ""       only this zone; "" for all
//   country     string   = ""       only this country; "" for all

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

columns = if params.per_device then ["hostname", "change_type"] else ["change_type"]

from(bucket: params.bucket)
    |> range(start: params.start, stop: params.stop)
    // Every point has exactly one change_type field: counting it counts points.
    |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "change_type")
    |> filter(fn: byZone)
    |> filter(fn: byCountry)
    |> filter(fn: byHost)
    |> map(fn: (r) => ({r with change_type: r._value}))
    |> group(columns: columns)
    |> aggregateWindow(every: 1d, fn: count, timeSrc: "_start", createEmpty: true)
    |> rename(columns: {_value: "points"})
    |> drop(columns: ["_start", "_stop"])
