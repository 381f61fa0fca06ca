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
//   points_<change type>                                     points stored in the window with
//       that change_type (points_periodic, points_sensor_data, ...), written by toKinds();
//       a kind without points has no field
// min/max range over the values that held for some time in the window, the carried one
// included. A window in which the device never had live values (no points, or only an
// offline marker) has no row.
//
// Every heartbeat point carries all sensor and I/O fields (stores/influx/points.py); a point
// lacking a sensor value is skipped.
//
// toGroups() then sums each hour's device rows into `group_hourly_stats`, one row per zone
// and country: what fleet-wide and per-zone reports read, so that they scan a few rows per
// hour instead of one per device (10,000 devices: 10,000 rows an hour).
//
// pointKinds() |> toKinds() counts the stored points by change_type, per device and per zone
// and country, with columnar group/count steps: counting them inside hourlyStats()'s
// row-by-row map() and reduce() cost a third more time.
//
// This file only defines functions: stores/influx/tasks.py appends the calls, one
// hourlyStats() per hour piped into toHourly() and toGroups(), and one pointKinds() over the
// same hours piped into toKinds(), for the scheduled task and for backfills.

import "date"
import "strings"
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

// toGroups sums device_hourly_stats rows (as hourlyStats() makes them) per hour, zone and
// country and writes them as `group_hourly_stats` points (tags zone, country; a device
// without a zone or country is summed under no tag):
//   devices                                          devices with live values in the hour
//   covered_seconds                                  their live time, summed (s)
//   weighted_temperature, weighted_humidity,         sum over devices of avg * covered_seconds:
//   weighted_fan_pwm_duty                            divided by covered_seconds, the group's
//                                                    time-weighted mean
//   sample_count, panic1_events, panic2_events,      sums of the device fields
//   tamper_events
// Rewriting an hour overwrites its points, as toHourly() does. Returns the rows written.
toGroups = (tables=<-, bucket, org) =>
    tables
        |> map(
            fn: (r) =>
                ({
                    _time: r._time,
                    zone: r.zone,
                    country: r.country,
                    covered: r.covered_seconds,
                    tWeighted: r.avg_temperature * r.covered_seconds,
                    hWeighted: r.avg_humidity * r.covered_seconds,
                    fWeighted: r.avg_fan_pwm_duty * r.covered_seconds,
                    samples: r.sample_count,
                    panic1: r.panic1_events,
                    panic2: r.panic2_events,
                    tamper: r.tamper_events,
                }),
        )
        |> group(columns: ["_time", "zone", "country"])
        |> reduce(
            identity: {
                devices: 0,
                covered_seconds: 0.0,
                weighted_temperature: 0.0,
                weighted_humidity: 0.0,
                weighted_fan_pwm_duty: 0.0,
                sample_count: 0,
                panic1_events: 0,
                panic2_events: 0,
                tamper_events: 0,
            },
            fn: (r, accumulator) =>
                ({
                    devices: accumulator.devices + 1,
                    covered_seconds: accumulator.covered_seconds + r.covered,
                    weighted_temperature: accumulator.weighted_temperature + r.tWeighted,
                    weighted_humidity: accumulator.weighted_humidity + r.hWeighted,
                    weighted_fan_pwm_duty: accumulator.weighted_fan_pwm_duty + r.fWeighted,
                    sample_count: accumulator.sample_count + r.samples,
                    panic1_events: accumulator.panic1_events + r.panic1,
                    panic2_events: accumulator.panic2_events + r.panic2,
                    tamper_events: accumulator.tamper_events + r.tamper,
                }),
        )
        |> map(fn: (r) => ({r with _measurement: "group_hourly_stats"}))
        |> to(
            bucket: bucket,
            org: org,
            tagColumns: ["zone", "country"],
            fieldFn: (r) =>
                ({
                    devices: r.devices,
                    covered_seconds: r.covered_seconds,
                    weighted_temperature: r.weighted_temperature,
                    weighted_humidity: r.weighted_humidity,
                    weighted_fan_pwm_duty: r.weighted_fan_pwm_duty,
                    sample_count: r.sample_count,
                    panic1_events: r.panic1_events,
                    panic2_events: r.panic2_events,
                    tamper_events: r.tamper_events,
                }),
        )

// pointKinds counts the heartbeat points of [start, stop) per device, change_type and hour:
// rows with the device tags, `kind` (the change_type), _time (the hour) and _value (points).
pointKinds = (bucket, start, stop) =>
    from(bucket: bucket)
        |> range(start: start, stop: stop)
        |> filter(fn: (r) => r._measurement == "heartbeat" and r._field == "change_type")
        |> duplicate(column: "_value", as: "kind")
        |> group(columns: ["device_id", "hostname", "zone", "country", "kind"])
        |> aggregateWindow(every: 1h, fn: count, timeSrc: "_start", createEmpty: false)

// toKinds writes pointKinds() rows as points_<kind> fields: of `device_hourly_stats` per
// device, and summed per zone and country of `group_hourly_stats`. Returns the group rows.
toKinds = (tables=<-, bucket, org) => {
    devices =
        tables
            |> map(
                fn: (r) =>
                    ({
                        _time: r._time,
                        _measurement: "device_hourly_stats",
                        device_id: r.device_id,
                        hostname: r.hostname,
                        zone: r.zone,
                        country: r.country,
                        _field: "points_" + strings.toLower(v: r.kind),
                        _value: r._value,
                    }),
            )
            |> to(bucket: bucket, org: org, tagColumns: ["device_id", "hostname", "zone", "country"])
    groups =
        tables
            |> group(columns: ["_time", "zone", "country", "kind"])
            |> sum()
            |> map(
                fn: (r) =>
                    ({
                        _time: r._time,
                        _measurement: "group_hourly_stats",
                        zone: r.zone,
                        country: r.country,
                        _field: "points_" + strings.toLower(v: r.kind),
                        _value: r._value,
                    }),
            )
            |> to(bucket: bucket, org: org, tagColumns: ["zone", "country"])

    // Both writes run when the result is read; the device rows are dropped from it.
    return
        union(
            tables: [
                devices
                    |> filter(fn: (r) => false)
                    |> keep(columns: ["_time", "_measurement", "zone", "country", "_field", "_value"]),
                groups,
            ],
        )
}
