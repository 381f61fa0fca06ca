"""``fleetwatch device-types`` and ``fleetwatch devices`` against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from access.devices import DeviceRefused, identify_device
from fleetwatch.cli import main
from fleetwatch.settings import PostgresSettings
from ingest.kinds import builtin_types
from stores.postgres.migrate import upgrade
from tests.support.people import add_people

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def migrated(pg_env: PostgresSettings) -> PostgresSettings:
    upgrade(pg_env)
    return pg_env


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_show_edit_list_and_delete_a_type(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A type declared on the command line reads back whole, edits replace its metrics, a
    type with devices cannot be deleted, an unused one can."""
    code, out, _ = run(
        capsys,
        "device-types",
        "add",
        "vibration_sensor",
        "--metric",
        "vibration:mm/s:float:0:100:0.5",
        "--metric",
        "running::bool",
        "--description",
        "compressor monitor",
    )
    assert (code, out) == (0, "device type vibration_sensor: 2 metrics\n")
    code, out, _ = run(capsys, "device-types", "show", "vibration_sensor")
    shown = yaml.safe_load(out)
    assert shown["description"] == "compressor monitor"
    assert shown["auto_register"] is False
    assert shown["metrics"] == [
        {
            "name": "vibration",
            "unit": "mm/s",
            "type": "float",
            "min": 0.0,
            "max": 100.0,
            "dead_band": 0.5,
        },
        {"name": "running", "unit": "", "type": "bool"},
    ]
    code, out, _ = run(
        capsys,
        "device-types",
        "edit",
        "vibration_sensor",
        "--metric",
        "vibration:mm/s:float:0:50:0.25",
        "--auto-register",
    )
    assert code == 0
    shown = yaml.safe_load(run(capsys, "device-types", "show", "vibration_sensor")[1])
    assert shown["auto_register"] is True
    assert [(m["name"], m["max"], m["dead_band"]) for m in shown["metrics"]] == [
        ("vibration", 50.0, 0.25)
    ]
    code, out, _ = run(capsys, "devices", "add", "VIB-SN-001", "--type", "vibration_sensor")
    assert code == 0
    assert out.startswith("device VIB-SN-001 (vibration_sensor): id ")
    code, out, _ = run(capsys, "device-types", "list")
    assert "vibration_sensor" in out
    assert "vibration (mm/s)" in out
    assert out.splitlines()[1].split()[1] == "1"  # one device
    code, _, err = run(capsys, "device-types", "delete", "vibration_sensor")
    assert code == 1
    assert "still has devices" in err
    code, out, _ = run(capsys, "devices", "list")
    assert "VIB-SN-001" in out
    assert "never" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["device-types", "add", "x", "--metric", "v:mm/s:float:0:100"], "needs a dead band"),
        (["device-types", "add", "x", "--metric", "v::bool:0:1"], "has no range"),
        (["device-types", "add", "x", "--metric", "v::text:::1"], "float, int or bool"),
        (["device-types", "add", "Bad Name", "--metric", "v::bool"], "must match"),
        (["device-types", "show", "nothing"], "no device type 'nothing'"),
        (["devices", "add", "SN-1", "--type", "nothing"], "no device type 'nothing'"),
        (["devices", "add", "bad serial", "--type", "x"], "must match"),
    ],
)
def test_impossible_requests_say_why(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A declaration the CDC could not use, or a name that does not exist, fails with the
    reason and exit status 1."""
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert message in err


def test_a_type_declared_twice_is_refused(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second add of a name fails; the first stays."""
    args = ["device-types", "add", "gauge", "--metric", "level:m:float:0:10:0.1"]
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args)
    assert code == 1
    assert "exists already" in err


def test_the_shipped_file_loads_and_reloads(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The simulator's device types file creates its types, loading it again (--demo)
    replaces them, and the same declaration as YAML loads too."""
    shipped = ROOT / "simulator" / "device_types.toml"
    code, out, _ = run(capsys, "device-types", "load", str(shipped))
    assert code == 0
    assert out.count(": created") == 3
    code, out, _ = run(capsys, "device-types", "load", "--demo")
    assert out.count(": replaced") == 3
    shown = yaml.safe_load(run(capsys, "device-types", "show", "pressure_sensor")[1])
    as_yaml = tmp_path / "types.yaml"
    as_yaml.write_text(yaml.safe_dump({"device_types": [{**shown, "name": "pressure_copy"}]}))
    code, out, _ = run(capsys, "device-types", "load", str(as_yaml))
    assert (code, out) == (0, "device type pressure_copy: created\n")
    copy = yaml.safe_load(run(capsys, "device-types", "show", "pressure_copy")[1])
    assert copy["metrics"] == shown["metrics"]


def test_a_broken_file_is_refused_whole(
    migrated: PostgresSettings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An unknown key or a bad metric in a file names the problem and stores nothing."""
    bad = tmp_path / "types.toml"
    bad.write_text(
        '[[device_types]]\nname = "ok"\n[[device_types.metrics]]\nname = "v"\ndead_band = 1\n'
        '[[device_types]]\nname = "broken"\ncolour = "red"\n'
        '[[device_types.metrics]]\nname = "v"\ndead_band = 1\n'
    )
    code, _, err = run(capsys, "device-types", "load", str(bad))
    assert code == 1
    assert "colour" in err
    assert "ok" not in run(capsys, "device-types", "list")[1].split()


def test_device_tokens_are_issued_and_revoked_by_admins_only(
    migrated: PostgresSettings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An admin issues a WebSocket device's token (shown once, stored as a digest, the device
    now reached over WebSocket); an operator is refused; revoking ends every live one."""
    with psycopg.connect(str(migrated.database_url), autocommit=True) as conn:
        builtin_types.install(conn)
        tokens = add_people(conn)
    assert run(capsys, "devices", "add", "cam-7", "--type", "ESP32-CAM")[0] == 0
    monkeypatch.setenv("FLEETWATCH_TOKEN", tokens["ana"])
    code, out, err = run(capsys, "devices", "token", "cam-7")
    assert (code, out) == (3, "")
    assert "refused" in err
    monkeypatch.setenv("FLEETWATCH_TOKEN", tokens["ada"])
    code, out, _ = run(capsys, "devices", "token", "cam-7")
    secret = out.strip()
    assert code == 0
    assert secret.startswith("fwd_")
    with psycopg.connect(str(migrated.database_url), autocommit=True) as conn:
        assert identify_device(conn, "cam-7", secret, source="test").device_type == "ESP32-CAM"
        stored = conn.execute("SELECT token_hash FROM device_tokens").fetchone()
        assert stored is not None
        assert secret not in stored[0]
    assert run(capsys, "devices", "token", "no-such")[0] == 1
    assert run(capsys, "devices", "token", "cam-7", "--revoke")[:2] == (
        0,
        "1 token(s) of cam-7 revoked\n",
    )
    with (
        psycopg.connect(str(migrated.database_url), autocommit=True) as conn,
        pytest.raises(DeviceRefused),
    ):
        identify_device(conn, "cam-7", secret, source="test")
