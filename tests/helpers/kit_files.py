"""Shared loading for the ops kit tests."""

from __future__ import annotations

import re
import shutil
from functools import cache
from typing import Any

import pytest
import yaml

from borgwatch.kit import KIT_DIR, read_asset

RUNBOOK_BASE = "https://github.com/borgwatch/borgwatch/blob/main/borgwatch/kit/backup-alert-playbook.md#"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
needs_amtool = pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed")


@cache
def rules_doc() -> dict[str, Any]:
    return yaml.safe_load(read_asset("rules"))


def all_rules() -> list[dict[str, Any]]:
    return [rule for group in rules_doc()["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def alert_names() -> set[str]:
    return {rule["alert"] for rule in alert_rules()}


def recorded_names() -> frozenset[str]:
    """Recording rules of both rule files (dashboards use the SLO ones too)."""
    return frozenset(rule["record"] for rule in all_rules() + slo_rules() if "record" in rule)


@cache
def slo_rules_doc() -> dict[str, Any]:
    return yaml.safe_load(read_asset("slo-rules"))


def slo_rules() -> list[dict[str, Any]]:
    return [rule for group in slo_rules_doc()["groups"] for rule in group["rules"]]


def slo_alert_names() -> set[str]:
    return {rule["alert"] for rule in slo_rules() if "alert" in rule}


@cache
def rules_tests_doc() -> dict[str, Any]:
    return yaml.safe_load(read_asset("rules-test"))


def github_anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def playbook_sections() -> dict[str, str]:
    """Level-2 headings of the playbook -> section text."""
    parts = re.split(r"^## (.+)$", read_asset("playbook"), flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


__all__ = ["KIT_DIR", "RUNBOOK_BASE", "needs_amtool", "needs_promtool"]
