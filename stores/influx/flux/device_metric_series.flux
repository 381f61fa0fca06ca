// The stored metric-history points of one device, as written: one row per point, every field.
//
// Answers: what exactly did the CDC keep for this device of a kind whose metrics are
// declared (device_series.flux is the panels' heartbeat), and why (`change_type`,
// `changes`)? Each row's values hold until the next row of the same series (a step
// function). A device with several parts (a robot) has one series per measurement and
// instance tag (`servo_id`, `sensor_type`); the `_measurement` column says which.
//
// Parameters:
//   bucket       string                 raw bucket
//   device_id    string                 the device's id (every metric history tags it)
//   measurements string   = "telemetry" comma-separated measurements to read
//   start        time     = -24h        first instant of the period
//   stop         time     = now         end of the period (exclusive)

import "regexp"
import "strings"

// "battery,servos" -> /^(battery|servos)$/, each name matched literally; a regular
// expression on _measurement, unlike contains(), is pushed down to storage.
measurementPattern =
    regexp.compile(
        v:
            "^(" + strings.replaceAll(v: regexp.quoteMeta(v: params.measurements), t: ",", u: "|")
                + ")$",
    )

from(bucket: params.bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._measurement =~ measurementPattern and r.device_id == params.device_id)
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> drop(columns: ["_start", "_stop"])
    |> sort(columns: ["_time"])
