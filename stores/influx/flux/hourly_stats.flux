// device_hourly_stats: what each device's sensors and alarm inputs did in one window
// (an hour), computed from the CDC-thinned `heartbeat` history.
//
// The stored series is read as a step function: each point's values hold until the device's
// next point. A plain mean of the points would be biased towards the moments the CDC chose to
// write (changes come in bursts, steady stretches get one point per 5 minutes), so:
//
// * every point is weighted by how long its values held inside the window
//   (events.duration(): the time to the next point, or to the window's end for the last),
//   and avg = sum(value * held) / sum(held). Flux's timeWeightedAvg() is not used: it
//   interpolates linearly between points, ramping where the series steps;
// * the value current when the window opens is carried in: the read starts `carry` (10 min)
//   before the window, and the last point before the start counts from the start onward.
//   The CDC writes a point at least every 5 minutes while a device reports, so a reporting
//   device always has one there;
// * a point with is_online == false (the marker ingest writes when a device disconnects or
//   goes silent) re-states the last known values: its stretch, until the device's next
//   point, counts for nothing. covered_seconds says how much of the window had live values.
//
// Per device (tags device_id, hostname, zone, country) and window, at the window's start:
//   avg_temperature, min_temperature, max_temperature       time-weighted mean, extremes (°C)
//   avg_humidity, min_humidity, max_humidity                 the same for humidity (%)
//   avg_fan_pwm_duty                                         time-weighted mean fan duty (%)
//   covered_seconds                                          time with live values (s)
//   sample_count                                             points stored in the window
//   panic1_events, panic2_events, tamper_events              false -> true transitions of
//       panic1, panic2 and box_sw in the window; the state before the window's first point is
//       the carried one, or false when none was carried.
// min/max range over the values that held for some time in the window, the carried one
// included. A window in which the device never had live values (no points, or only an
// offline marker) has no row.
//
// Every heartbeat point carries all sensor and I/O fields (stores/influx/points.py); a point
// lacking a sensor value is skipped.
//
// This file only defines functions: stores/influx/tasks.py appends the calls, one
// hourlyStats() per hour piped into toHourly(), for the scheduled task and for backfills.

import "date"
import "contrib/tomhollingworth/events"

// hourlyStats computes the statistics of [start, stop) from the heartbeat points in `bucket`.
hourlyStats = (bucket, start, stop, carry=10m) => {
    startNs = int(v: start)

    return
        from(bucket: bucket)
            |> range(start: date.sub(d: carry, from: start), stop: stop)
            |> filter(fn: (r) => r._measurement == "heartbeat")
            |> filter(
                fn: (r) =>
                    r._field == "temperature" or r._field == "humidity" or r._field == "fan_pwm_duty"
                        or r._field == "panic1" or r._field == "panic2" or r._field == "box_sw"
                        or r._field == "is_online",
            )
            |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
            |> filter(
                fn: (r) => exists r.temperature and exists r.humidity and exists r.fan_pwm_duty,
            )
            |> sort(columns: ["_time"])
            // held: nanoseconds until the next point, or until the window's end for the last.
            |> events.duration(unit: 1ns, columnName: "held", stopColumn: "_stop")
            // up*: the inputs as 0/1; difference() then leaves 1 where one went false -> true
            // since the previous point (null on the first point read).
            |> map(
                fn: (r) =>
                    ({r with
                        up1: if r.panic1 then 1 else 0,
                        up2: if r.panic2 then 1 else 0,
                        upT: if r.box_sw then 1 else 0,
                    }),
            )
            |> difference(columns: ["up1", "up2", "upT"], keepFirst: true)
            |> map(
                fn: (r) => {
                    // This point's values hold over [t, t + held); the part inside the
                    // window starts at the later of t and start (the carried point's case).
                    t = int(v: r._time)
                    begins = if t > startNs then t else startNs
                    ends = t + r.held
                    live = if exists r.is_online then r.is_online else true
                    inside = r._time >= start

                    return {r with
                        weight:
                            if live and ends > begins then
                                float(v: ends - begins) / 1000000000.0
                            else
                                0.0,
                        stored: if inside then 1 else 0,
                        rise1:
                            if not inside then
                                0
                            else if exists r.up1 then
                                if r.up1 == 1 then 1 else 0
                            else if r.panic1 then
                                1
                            else
                                0,
                        rise2:
                            if not inside then
                                0
                            else if exists r.up2 then
                                if r.up2 == 1 then 1 else 0
                            else if r.panic2 then
                                1
                            else
                                0,
                        riseT:
                            if not inside then
                                0
                            else if exists r.upT then
                                if r.upT == 1 then 1 else 0
                            else if r.box_sw then
                                1
                            else
                                0,
                    }
                },
            )
            |> reduce(
                identity: {
                    samples: 0,
                    covered: 0.0,
                    tSum: 0.0,
                    tMin: 0.0,
                    tMax: 0.0,
                    hSum: 0.0,
                    hMin: 0.0,
                    hMax: 0.0,
                    fSum: 0.0,
                    panic1: 0,
                    panic2: 0,
                    tamper: 0,
                },
                fn: (r, accumulator) => {
                    // The first value that held for some time sets min and max.
                    first = accumulator.covered == 0.0
                    counts = r.weight > 0.0
                    fan = float(v: r.fan_pwm_duty)

                    return {
                        samples: accumulator.samples + r.stored,
                        covered: accumulator.covered + r.weight,
                        tSum: accumulator.tSum + r.temperature * r.weight,
                        tMin:
                            if counts and (first or r.temperature < accumulator.tMin) then
                                r.temperature
                            else
                                accumulator.tMin,
                        tMax:
                            if counts and (first or r.temperature > accumulator.tMax) then
                                r.temperature
                            else
                                accumulator.tMax,
                        hSum: accumulator.hSum + r.humidity * r.weight,
                        hMin:
                            if counts and (first or r.humidity < accumulator.hMin) then
                                r.humidity
                            else
                                accumulator.hMin,
                        hMax:
                            if counts and (first or r.humidity > accumulator.hMax) then
                                r.humidity
                            else
                                accumulator.hMax,
                        fSum: accumulator.fSum + fan * r.weight,
                        panic1: accumulator.panic1 + r.rise1,
                        panic2: accumulator.panic2 + r.rise2,
                        tamper: accumulator.tamper + r.riseT,
                    }
                },
            )
            |> filter(fn: (r) => r.covered > 0.0)
            |> map(
                fn: (r) =>
                    ({
                        _time: start,
                        _measurement: "device_hourly_stats",
                        device_id: r.device_id,
                        hostname: r.hostname,
                        zone: r.zone,
                        country: r.country,
                        avg_temperature: r.tSum / r.covered,
                        min_temperature: r.tMin,
                        max_temperature: r.tMax,
                        avg_humidity: r.hSum / r.covered,
                        min_humidity: r.hMin,
                        max_humidity: r.hMax,
                        avg_fan_pwm_duty: r.fSum / r.covered,
                        covered_seconds: r.covered,
                        sample_count: r.samples,
                        panic1_events: r.panic1,
                        panic2_events: r.panic2,
                        tamper_events: r.tamper,
                    }),
            )
}

// toHourly writes hourlyStats() rows as `device_hourly_stats` points; writing a window again
// overwrites its points (same series, same time), so a recomputation is harmless.
toHourly = (tables=<-, bucket, org) =>
    tables
        |> to(
            bucket: bucket,
            org: org,
            tagColumns: ["device_id", "hostname", "zone", "country"],
            fieldFn: (r) =>
                ({
                    avg_temperature: r.avg_temperature,
                    min_temperature: r.min_temperature,
                    max_temperature: r.max_temperature,
                    avg_humidity: r.avg_humidity,
                    min_humidity: r.min_humidity,
                    max_humidity: r.max_humidity,
                    avg_fan_pwm_duty: r.avg_fan_pwm_duty,
                    covered_seconds: r.covered_seconds,
                    sample_count: r.sample_count,
                    panic1_events: r.panic1_events,
                    panic2_events: r.panic2_events,
                    tamper_events: r.tamper_events,
                }),
        )
