"""``fleetwatch check --kafka`` says whether a scaled-out deployment's Kafka answers."""

from __future__ import annotations

import pytest

from fleetwatch.cli import main


def test_check_reports_kafka(kafka_service: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--kafka"]) == 0
    out = capsys.readouterr().out
    assert "kafka: ok (1 broker(s); topic fleetwatch.device-messages:" in out


def test_check_fails_when_kafka_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEETWATCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["check", "--kafka"]) == 1
    assert "kafka: FAILED - 127.0.0.1:1:" in capsys.readouterr().out
