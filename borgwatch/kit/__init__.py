"""The ops kit: alert rules, their unit tests, the runbook, Alertmanager routes, Grafana dashboards and
provisioning, and the Loki side, shipped inside the package (``borgwatch rules``, ``borgwatch kit NAME``)."""

from __future__ import annotations

from pathlib import Path

KIT_DIR = Path(__file__).resolve().parent

# short name -> path relative to the kit directory
ASSETS: dict[str, str] = {
    "rules": "borgwatch-rules.yml",
    "rules-test": "borgwatch-rules.test.yml",
    "playbook": "backup-alert-playbook.md",
    "routes": "alertmanager-routes.yaml",
    "dashboard-backup-assurance": "dashboards/backup-assurance.json",
    "dashboard-hardware-health": "dashboards/hardware-health.json",
    "dashboard-golden-signals": "dashboards/golden-signals.json",
    "dashboards-catalog": "grafana-dashboards.md",
    "grafana-datasources": "grafana-provisioning/datasources.yaml",
    "grafana-dashboards": "grafana-provisioning/dashboards.yaml",
    "loki-config": "loki/loki-config.yaml",
    "loki-archive": "loki/archive-logs.sh",
    # TLS probes (blackbox_exporter)
    "blackbox-config": "blackbox/blackbox.yml",
    "blackbox-scrape": "blackbox/prometheus-scrape.yml",
    "blackbox-targets": "blackbox/targets.example.yml",
    "tls-rules": "blackbox/tls-probe-rules.yml",
    "tls-rules-test": "blackbox/tls-probe-rules.test.yml",
    # SLOs: objectives, indicators and error-budget burn alerts (the report reads the same objectives)
    "slo-rules": "borgwatch-slo-rules.yml",
    "slo-rules-test": "borgwatch-slo-rules.test.yml",
    "slo-rules-drills-test": "borgwatch-slo-rules.drills.test.yml",  # hourly over 45 days: 30-day windows
    # restore drills (`borgwatch drill`): their alerts and the alerts' unit tests
    "drill-rules": "borgwatch-drill-rules.yml",
    "drill-rules-test": "borgwatch-drill-rules.test.yml",
}


def asset_path(name: str) -> Path:
    """Absolute path of a kit asset; KeyError (listing the valid names) for an unknown name."""
    try:
        return KIT_DIR / ASSETS[name]
    except KeyError:
        raise KeyError(f"unknown kit asset {name!r}; valid names: {', '.join(sorted(ASSETS))}") from None


def read_asset(name: str) -> str:
    """Text of a kit asset, e.g. ``read_asset("rules")``."""
    return asset_path(name).read_text(encoding="utf-8")
