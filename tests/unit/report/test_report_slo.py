"""The report's SLO arithmetic on hand-made samples (pure functions, no Prometheus)."""

from __future__ import annotations

import pytest

from borgwatch.report.slo import Breach, RunSlo, TimeSlo, counter_increase, fmt_duration, stale_intervals

H = 3600


def test_stale_between_successes_and_at_the_end() -> None:
    # successes at 0 and 30h with a 10h limit, observed from 0 to 50h
    stamps = [(t * H, 0.0) for t in range(0, 30)] + [(t * H, 30.0 * H) for t in range(30, 50)]
    observed, breaches = stale_intervals(stamps, [(0, 10.0 * H)], 0, 50 * H)
    assert observed == 50 * H
    assert breaches == [Breach(10 * H, 30 * H, False), Breach(40 * H, 50 * H, True)]


def test_never_succeeded_is_stale_from_the_first_sample() -> None:
    observed, breaches = stale_intervals([], [(5 * H, 10.0 * H), (9 * H, 10.0 * H)], 0, 20 * H)
    assert observed == 15 * H and breaches == [Breach(5 * H, 20 * H, True)]


def test_limit_in_force_while_a_success_was_newest() -> None:
    stamps = [(t * H, 0.0) for t in range(0, 20)]
    limits = [(t * H, 10.0 * H if t < 5 else 15.0 * H) for t in range(0, 20)]  # max_age raised at 5h
    _, breaches = stale_intervals(stamps, limits, 0, 20 * H)
    assert breaches == [Breach(15 * H, 20 * H, True)]


def test_budget_and_attainment() -> None:
    slo = TimeSlo(0.95, 100 * H, [Breach(0, 10 * H, False)])
    assert slo.attainment == pytest.approx(0.9)
    assert slo.budget_remaining == pytest.approx(1 - 10 / 5)
    runs = RunSlo(0.9, {"success": 17, "warning": 1, "error": 1, "interrupted": 1})
    assert (runs.total, runs.good, runs.attainment) == (20, 18, 0.9)
    assert runs.budget_remaining == pytest.approx(0.0)
    assert RunSlo(0.9, {}).attainment is None


def test_counter_reset_counts_the_new_value() -> None:
    assert counter_increase([(0, 5), (1, 7), (2, 1), (3, 2)]) == 2 + 1 + 1


@pytest.mark.parametrize(("seconds", "text"), [(59, "1 min"), (3600 + 1800, "1 h 30 min"),
                                               (2 * 86400 + 3 * 3600, "2 d 3 h")])
def test_durations_for_people(seconds: float, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_default_objectives_are_read_from_the_kit_rules_file() -> None:
    from borgwatch.report.collect import default_objectives
    assert default_objectives() == pytest.approx(
        {"freshness": 0.95, "runs": 0.9, "integrity": 0.99, "check_max_age": 8 * 86400, "drill_freshness": 0.95,
         "drill_coverage": 0.1})
