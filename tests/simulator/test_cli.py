"""``fleetwatch simulate`` as a process: runs, stops cleanly on SIGTERM, refuses bad options."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from fleetwatch.settings import MqttSettings


def environment(mqtt: MqttSettings) -> dict[str, str]:
    return {
        **os.environ,
        "FLEETWATCH_MQTT_HOST": mqtt.mqtt_host,
        "FLEETWATCH_MQTT_PORT": str(mqtt.mqtt_port),
        "FLEETWATCH_TOPIC_PREFIX": mqtt.topic_prefix,
    }


def test_sigterm_stops_a_run_cleanly(mqtt_settings: MqttSettings) -> None:
    """A run without a duration ends on SIGTERM with status 0 and its summary on stdout."""
    child = subprocess.Popen(
        [sys.executable, "-m", "fleetwatch", "simulate", "--devices", "20", "--speed", "50"],
        env=environment(mqtt_settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    try:
        for line in child.stderr:  # blocks until the child logs; ends if the child dies
            if "simulating 20 panels, 0 telemetry devices and 0 robots" in line:
                break
        else:
            raise AssertionError(f"simulate exited with {child.wait()} before connecting")
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0
    assert out.startswith("simulate: published ")


def test_bad_option_is_refused(mqtt_settings: MqttSettings) -> None:
    """A non-positive speed stops the command before it connects, saying why."""
    done = subprocess.run(
        [sys.executable, "-m", "fleetwatch", "simulate", "--devices", "5", "--speed", "0"],
        env=environment(mqtt_settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "speed must be a positive number" in done.stderr


def test_kinds_are_mixed_with_counts(mqtt_settings: MqttSettings) -> None:
    """--kind panel --kind telemetry=COUNT runs both kinds; an unknown kind is refused."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetwatch",
            "simulate",
            "--devices",
            "3",
            "--kind",
            "panel",
            "--kind",
            "telemetry=4",
            "--speed",
            "60",
            "--duration",
            "30",
        ],
        env=environment(mqtt_settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "simulating 3 panels, 4 telemetry devices and 0 robots" in done.stderr
    assert "telemetry " in done.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "fleetwatch", "simulate", "--kind", "toaster=2"],
        env=environment(mqtt_settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "--kind 'toaster': one of panel, telemetry, robot" in refused.stderr
