// metric_hourly_stats: what each metric of a metric history did in one window (an hour),
// for every kind whose history is written one field per declared metric (stores/influx/
// points.py, MetricPoint): `telemetry` of devices of declared types, and the robot's
// `battery`, `performance`, `servos`, `imu` and `sensors`. The panel's `heartbeat` has its
// own, richer downsample (hourly_stats.flux).
//
// The stored series of a metric is read as a step function, as hourlyStats() reads the
// heartbeat: each value holds until the series' next value of that metric, weighted by how
// long it held inside the window; the value in force when the window opens is carried in
// from up to `carry` before it; a point whose is_online is false (the offline marker ingest
// writes with the last known values) starts a stretch that counts for nothing.
//
// The offline marker is a field of its own, so in the long format a metric's rows do not
// see it. metricHourly() pivots each series' points into rows (every field of a point side
// by side, is_online among them) and unpivots the metric columns again, now carrying the
// point's is_online along: one pass, whatever metrics the kind declares. Strings (the
// CDC's change_type and changes, a device's state words) are left out; a boolean is read as
// 1.0 or 0.0, so its average is the fraction of live time it was true.
//
// Per series (all the measurement's tags: device_id and hostname or robot_id, device_type,
// servo_id, sensor_type, ...) and metric, at the window's start, measurement
// `metric_hourly_stats` with the added tags `source` (the raw measurement) and `metric`:
//   avg              time-weighted mean over the live time
//   min, max         extremes of the values that held for some time in the window
//   covered_seconds  time with a live value (s)
//   sample_count     points of the metric stored in the window
// A window in which the metric never had a live value has no row.
//
// This file only defines functions: stores/influx/tasks.py appends the calls, one
// metricHourly() per measurement and hour piped into toMetricHourly().

import "date"
import "types"
import "experimental"
import "contrib/tomhollingworth/events"

// metricHourly computes the statistics of [start, stop) of every metric of `measurement`.
metricHourly = (bucket, measurement, start, stop, carry=10m) => {
    startNs = int(v: start)

    return
        from(bucket: bucket)
            |> range(start: date.sub(d: carry, from: start), stop: stop)
            |> filter(fn: (r) => r._measurement == measurement)
            // What every CDC point carries besides its metrics (why it was written).
            |> filter(
                fn: (r) =>
                    r._field != "change_type" and r._field != "changes"
                        and r._field != "device_time_ms",
            )
            |> filter(fn: (r) => not types.isType(v: r._value, type: "string"))
            |> map(fn: (r) => ({r with _value: float(v: r._value)}))
            |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
            |> map(fn: (r) => ({r with live: if exists r.is_online then r.is_online else 1.0}))
            |> drop(columns: ["is_online"])
            // One table per series and metric again: _field the metric, _value its value,
            // `live` the is_online of the point it came from. A point without the metric
            // has no row for it.
            |> experimental.unpivot(otherColumns: ["_time", "live"])
            |> sort(columns: ["_time"])
            // held: nanoseconds until the metric's next point, or the window's end.
            |> events.duration(unit: 1ns, columnName: "held", stopColumn: "_stop")
            |> map(
                fn: (r) => {
                    // The value holds over [t, t + held); the part inside the window starts
                    // at the later of t and start (the carried value's case).
                    t = int(v: r._time)
                    begins = if t > startNs then t else startNs
                    ends = t + r.held

                    return {r with
                        weight:
                            if r.live > 0.0 and ends > begins then
                                float(v: ends - begins) / 1000000000.0
                            else
                                0.0,
                        stored: if r._time >= start then 1 else 0,
                    }
                },
            )
            |> reduce(
                identity: {samples: 0, covered: 0.0, sum: 0.0, low: 0.0, high: 0.0},
                fn: (r, accumulator) => {
                    // The first value that held for some time sets min and max.
                    first = accumulator.covered == 0.0
                    counts = r.weight > 0.0

                    return {
                        samples: accumulator.samples + r.stored,
                        covered: accumulator.covered + r.weight,
                        sum: accumulator.sum + r._value * r.weight,
                        low:
                            if counts and (first or r._value < accumulator.low) then
                                r._value
                            else
                                accumulator.low,
                        high:
                            if counts and (first or r._value > accumulator.high) then
                                r._value
                            else
                                accumulator.high,
                    }
                },
            )
            |> filter(fn: (r) => r.covered > 0.0)
            |> map(
                fn: (r) =>
                    ({r with
                        _time: start,
                        _measurement: "metric_hourly_stats",
                        source: measurement,
                        metric: r._field,
                        avg: r.sum / r.covered,
                        min: r.low,
                        max: r.high,
                        covered_seconds: r.covered,
                        sample_count: r.samples,
                    }),
            )
            |> drop(columns: ["_field", "_start", "_stop", "sum", "low", "high", "covered", "samples"])
}

// toMetricHourly writes metricHourly() rows as `metric_hourly_stats` points, every string
// column a tag; writing a window again overwrites its points (same series, same time).
// Returns the rows written.
toMetricHourly = (tables=<-, bucket, org) =>
    tables
        |> to(
            bucket: bucket,
            org: org,
            fieldFn: (r) =>
                ({
                    avg: r.avg,
                    min: r.min,
                    max: r.max,
                    covered_seconds: r.covered_seconds,
                    sample_count: r.sample_count,
                }),
        )
