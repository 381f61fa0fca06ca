// Where the stored history of a field starts, for a device, a group or the whole fleet.
//
// Answers: what is the earliest stored point of `field` (of `measurement`) between `start`
// and `stop`, over the devices selected? A trend page asks it to tell a fleet that has just
// started (its history younger than the period's windows) from one with points before the
// period. first() on a bare range and filter is pushed down to storage: one point is read
// per series, however long the range.
//
// Output: one row, `_time` the earliest point's time; no row when there is none.
//
// Parameters:
//   bucket      string                    raw heartbeat bucket
//   start       time     = -24h           first instant to look at
//   stop        time     = now            end of the range (exclusive)
//   field       string   = "temperature"  field whose points count
//   measurement string   = "heartbeat"    heartbeat or telemetry
//   device_type string   = ""             only devices of this type; "" all
//   hostnames   string   = ""             comma-separated devices; "" for all
//   zone        string   = ""             only this zone; "" for all
//   country     string   = ""             only this country; "" for all

import "strings"
import "regexp"

// Tag filters that InfluxDB pushes down to storage (as in sensor_trend.flux).
byZone = if params.zone == "" then (r) => true else (r) => r.zone == params.zone
byCountry = if params.country == "" then (r) => true else (r) => r.country == params.country
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

from(bucket: params.bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._measurement == params.measurement and r._field == params.field)
    |> filter(fn: byZone)
    |> filter(fn: byCountry)
    |> filter(fn: byHost)
    |> filter(fn: byType)
    |> first()
    |> group()
    |> sort(columns: ["_time"])
    |> limit(n: 1)
    |> keep(columns: ["_time"])
