// The stored heartbeat points of one device, as written: one row per point, every field.
//
// Answers: what exactly did the CDC keep for this device, and why (`change_type`,
// `changes`)? Each row's values hold until the next row (a step function); a gap longer
// than five minutes means the device was silent or offline (see `is_online`). Use
// sensor_trend.flux for averages, never a plain mean of these rows.
//
// Parameters:
//   bucket    string               raw heartbeat bucket
//   hostname  string               the device (ESG_ALARM_0001)
//   start     time     = -24h      first instant of the period
//   stop      time     = now       end of the period (exclusive)

from(bucket: params.bucket)
    |> range(start: params.start, stop: params.stop)
    |> filter(fn: (r) => r._measurement == "heartbeat" and r.hostname == params.hostname)
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> drop(columns: ["_start", "_stop", "_measurement"])
    |> sort(columns: ["_time"])
