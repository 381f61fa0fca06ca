// How many CDC points the bucket holds (panel heartbeats and telemetry readings), all
// devices and time together.
//
// Answers: did every point the CDC wrote (PostgreSQL's heartbeat_counts.written) reach
// InfluxDB? Each such point has exactly one change_type field: counting it counts points.
// Two points of one device in the same millisecond would be one point here.
//
// Parameters:
//   bucket      string              the benchmark run's bucket

from(bucket: params.bucket)
    |> range(start: 0)
    |> filter(
        fn: (r) =>
            (r._measurement == "heartbeat" or r._measurement == "telemetry")
                and r._field == "change_type",
    )
    |> group()
    |> count()
