"""The shipped systemd units: identical to what `borgwatch schedule` renders, and clean under
`systemd-analyze verify` (which must also be shown to catch mistakes, or the check proves nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.units import fake_executable, needs_systemd_analyze, unit_settings, verify
from helpers.workspace import ROOT

from borgwatch.commands import schedule

SHIPPED = ROOT / "systemd"
SHIPPED_FILES = ("borgwatch@.service", "borgwatch@.timer", "borgwatch-failure@.service")


def test_shipped_units_are_the_rendered_defaults() -> None:
    assert (SHIPPED / "borgwatch@.service").read_text() == schedule.render_service()
    assert (SHIPPED / "borgwatch@.timer").read_text() == schedule.render_timer()
    assert (SHIPPED / "borgwatch-failure@.service").read_text() == schedule.render_failure()


def test_service_settings() -> None:
    s = unit_settings((SHIPPED / "borgwatch@.service").read_text())
    assert s["Service.Type"] == ["oneshot"]
    assert s["Service.UMask"] == ["0022"]
    assert s["Unit.OnFailure"] == ["borgwatch-failure@%i.service"]
    exec_start = s["Service.ExecStart"][0].split()
    assert exec_start[0] == "/usr/bin/systemd-inhibit"
    assert "--what=sleep:shutdown" in exec_start and "--mode=block" in exec_start
    assert exec_start[-3:] == [schedule.DEFAULT_BINARY, "run", "%i"]
    assert s["Service.Environment"] == ["BORGWATCH_CONFIG=/etc/borgwatch/config.toml"]
    for key, value in {"ProtectSystem": "strict", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "Nice": "19", "IOSchedulingClass": "best-effort", "CPUSchedulingPolicy": "batch",
                       "CapabilityBoundingSet": "CAP_DAC_READ_SEARCH"}.items():
        assert s[f"Service.{key}"] == [value], key
    assert "AF_PACKET" not in s["Service.RestrictAddressFamilies"][0]
    rw = s["Service.ReadWritePaths"][0].split()
    assert "/var/lib/borgwatch" in rw and "/var/lib/prometheus/node-exporter" in rw
    assert "-/root/.cache/borg" in rw


def test_timer_settings() -> None:
    t = unit_settings((SHIPPED / "borgwatch@.timer").read_text())
    assert t["Timer.OnCalendar"] == ["daily"]
    assert t["Timer.Persistent"] == ["true"]
    assert t["Timer.RandomizedDelaySec"] == ["30m"]
    assert t["Install.WantedBy"] == ["timers.target"]


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    """The shipped files, with the one path that differs on a test machine (the borgwatch binary)
    pointed at an executable that exists."""
    binary = fake_executable(tmp_path / "borgwatch-bin")
    units = tmp_path / "units"
    units.mkdir()
    for name in SHIPPED_FILES:
        text = (SHIPPED / name).read_text()
        if name == "borgwatch@.service":
            assert text.count(schedule.DEFAULT_BINARY) == 1
            text = text.replace(schedule.DEFAULT_BINARY, str(binary))
        (units / name).write_text(text)
    return units


@pytest.mark.slow
@needs_systemd_analyze
def test_shipped_units_verify_clean(shipped_copy: Path) -> None:
    done = verify(shipped_copy, "borgwatch@home.service", "borgwatch@.timer", "borgwatch@home.timer",
                  "borgwatch-failure@home.service")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # warnings such as "Unknown key" do not change the rc


@pytest.mark.slow
@needs_systemd_analyze
@pytest.mark.parametrize(("name", "old", "new", "expected"), [
    ("borgwatch@.timer", "OnCalendar=daily", "OnCalendar=every day", "Failed to parse"),
    ("borgwatch@.service", "UMask=0022", "UMask=0022\nProtectSytem=strict", "Unknown key"),
    ("borgwatch@.service", "ExecStart=/usr/bin/systemd-inhibit", "ExecStart=/nonexistent/inhibit",
     "is not executable"),
])
def test_verify_catches_broken_units(shipped_copy: Path, name: str, old: str, new: str,
                                     expected: str) -> None:
    path = shipped_copy / name
    path.write_text(path.read_text().replace(old, new, 1))
    done = verify(shipped_copy, "borgwatch@home.service", "borgwatch@home.timer")
    assert expected in done.stderr


@pytest.mark.slow
@needs_systemd_analyze
def test_generated_units_verify_clean(tmp_path: Path) -> None:
    binary = fake_executable(tmp_path / "bw")
    units = tmp_path / "units"
    for unit in schedule.job_units("home", "/srv/borg/home", "Mon..Fri 02:30", "1h", str(binary),
                                   "/etc/borgwatch/config.toml", "/var/lib/borgwatch",
                                   "/var/lib/prometheus/node-exporter"):
        (units / unit.name).parent.mkdir(parents=True, exist_ok=True)
        (units / unit.name).write_text(unit.text)
    assert (units / "borgwatch@home.service.d" / "repository.conf").exists()
    done = verify(units, "borgwatch@home.service", "borgwatch@home.timer")
    assert (done.returncode, done.stderr) == (0, "")
    timer = unit_settings((units / "borgwatch@home.timer").read_text())
    assert timer["Timer.OnCalendar"] == ["Mon..Fri 02:30"]
    assert timer["Timer.RandomizedDelaySec"] == ["1h"]
    # the drop-in is really read by systemd: a typo in it is reported
    dropin = units / "borgwatch@home.service.d" / "repository.conf"
    dropin.write_text(dropin.read_text() + "ReadWritePath=/typo\n")
    done = verify(units, "borgwatch@home.service")
    assert "Unknown key" in done.stderr and "repository.conf" in done.stderr


def test_remote_repository_gets_no_dropin() -> None:
    units = schedule.job_units("home", "ssh://u@host/./repo", "daily", "30m", "/x", "/c", "/s", "/t")
    assert [u.name for u in units] == ["borgwatch@.service", "borgwatch-failure@.service",
                                       "borgwatch@home.timer"]
    assert schedule.local_repository_path("file:///srv/r") == "/srv/r"
    assert schedule.local_repository_path("u@host:repo") is None


def test_paths_with_spaces_are_refused() -> None:
    with pytest.raises(ValueError, match="whitespace"):
        schedule.render_service(textfile_dir="/var/lib/my textfiles")



@pytest.mark.slow
@needs_systemd_analyze
def test_collect_example_units_verify_clean(tmp_path: Path) -> None:
    agent = SHIPPED.parent / "examples" / "agent"
    binary = fake_executable(tmp_path / "borgwatch-bin")
    units = tmp_path / "units"
    units.mkdir()
    for name in ("borgwatch-collect.service", "borgwatch-collect.timer"):
        text = (agent / name).read_text().replace(schedule.DEFAULT_BINARY, str(binary))
        (units / name).write_text(text)
    assert str(binary) in (units / "borgwatch-collect.service").read_text()
    done = verify(units, "borgwatch-collect.service", "borgwatch-collect.timer")
    assert (done.returncode, done.stderr) == (0, "")
