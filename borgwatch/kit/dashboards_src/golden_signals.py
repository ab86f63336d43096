"""Golden Signals: latency, traffic, errors and saturation of the Traefik ingress and the pods, and the TLS
probes of the sites (blackbox/)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from borgwatch.kit.dashboards_src.common import (
    PanelBuilder,
    dashboard,
    datasource_variable,
    panel,
    prom,
    prom_table,
    query_variable,
    value_map,
)

RATE = "[$__rate_interval]"
QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))
SVC = 'service=~"$service"'
NS = 'namespace=~"$namespace"'
POD = f'{NS}, container!=""'
# TLS probes: the modules of blackbox.yml, labelled by prometheus-scrape.yml
TARGET = 'instance=~"$target"'
VERIFY = f'module=~"https_verify|tls_verify", {TARGET}'
INSECURE = f'module=~"https_insecure|tls_insecure", {TARGET}'


def service_quantile(q: str) -> str:
    return (f"histogram_quantile({q}, sum by (le, service) "
            f"(rate(traefik_service_request_duration_seconds_bucket{{{SVC}}}{RATE})))")


def per_pod_ratio(numerator: str, denominator: str) -> str:
    return f"sum by (pod) ({numerator}) / sum by (pod) ({denominator})"


def ingress_and_pods() -> list[Row | PanelBuilder]:
    requests = f"traefik_service_requests_total{{{SVC}}}"
    return [
        Row("Latency"),
        panel(timeseries.Panel(), "Service latency p50 / p95 / p99",
              *(prom(service_quantile(q), f"{{{{service}}}} {p}") for q, p in QUANTILES),
              unit="s", width=12, thresholds=[("green", None), ("red", 1.5)],
              description="IngressLatencyHigh: p95 > 1.5 s for 5 m."),
        panel(timeseries.Panel(), "Entrypoint latency p95",
              prom("histogram_quantile(0.95, sum by (le, entrypoint) "
                   f"(rate(traefik_entrypoint_request_duration_seconds_bucket{RATE})))", "{{entrypoint}}"),
              unit="s", width=12),
        Row("Traffic"),
        panel(timeseries.Panel(), "Requests per second by service",
              prom(f"sum by (service) (rate({requests}{RATE}))", "{{service}}"), unit="reqps", width=12),
        panel(timeseries.Panel(), "Requests per second by entrypoint and code",
              prom(f"sum by (entrypoint, code) (rate(traefik_entrypoint_requests_total{RATE}))",
                   "{{entrypoint}} {{code}}"),
              unit="reqps", width=12),
        Row("Errors"),
        panel(timeseries.Panel(), "5xx ratio by service",
              prom(f'sum by (service) (rate(traefik_service_requests_total{{{SVC}, code=~"5.."}}{RATE}))'
                   f" / sum by (service) (rate({requests}{RATE}))", "{{service}}"),
              unit="percentunit", width=8),
        panel(stat.Panel(), "Backend servers down",
              prom(f"count by (service) (traefik_service_server_up{{{SVC}}} == 0)", "{{service}}"), width=8),
        panel(timeseries.Panel(), "Container restarts (1h)",
              prom(f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{NS}}}[1h]))", "{{pod}}"),
              width=8),
        Row("Saturation"),
        panel(timeseries.Panel(), "Pod CPU (cores)",
              prom(f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{POD}}}{RATE}))", "{{pod}}"), width=8),
        panel(timeseries.Panel(), "Pod CPU throttling",
              prom(per_pod_ratio(f"rate(container_cpu_cfs_throttled_periods_total{{{POD}}}{RATE})",
                                 f"rate(container_cpu_cfs_periods_total{{{POD}}}{RATE})"), "{{pod}}"),
              unit="percentunit", width=8),
        panel(timeseries.Panel(), "Pod memory / limit",
              prom(per_pod_ratio(f"container_memory_working_set_bytes{{{POD}}}",
                                 f'kube_pod_container_resource_limits{{{NS}, resource="memory"}}'), "{{pod}}"),
              unit="percentunit", width=8),
        panel(timeseries.Panel(), "Replicas available / desired",
              prom(f"kube_deployment_status_replicas_available{{{NS}}}", "{{deployment}} available"),
              prom(f"kube_deployment_spec_replicas{{{NS}}}", "{{deployment}} desired"),
              width=12),
        panel(timeseries.Panel(), "Open connections (Traefik)",
              prom("sum by (entrypoint) (traefik_entrypoint_open_connections)", "{{entrypoint}}"), width=6),
        panel(timeseries.Panel(), "Node CPU busy",
              prom(f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}{RATE}))', "{{instance}}"),
              unit="percentunit", width=6, thresholds=[("green", None), ("red", 0.9)]),
    ]


def tls_probe_panels() -> list[Row | PanelBuilder]:
    # the expiry expression of the recording rule tls:cert_expiry_timestamp_seconds, inlined so the
    # panel also works where only the probes, not the rules, are deployed
    expiry = (
        f"max without (job, module) (probe_ssl_last_chain_expiry_timestamp_seconds{{{VERIFY}}} > 0)"
        f" or max without (job, module) (probe_ssl_earliest_cert_expiry{{{INSECURE}}})"
    )
    probe = "{{instance}} {{module}}"
    return [
        Row("TLS probes"),
        panel(bargauge.Panel(), "Days to certificate expiry",
              prom(f"(({expiry}) - time()) / 86400", "{{instance}}"),
              unit="d", width=8, thresholds=[("red", None), ("orange", 7), ("green", 21)],
              description="TLSCertificateExpiring: < 21 days warning, < 7 days critical. From the verified chain "
              "when verification succeeds, else from the certificates the server sends."),
        panel(statetimeline.Panel(), "Probe success",
              prom(f"probe_success{{{VERIFY}}}", probe),
              prom(f'probe_success{{module="http_redirect", {TARGET}}}', "{{instance}} redirect to HTTPS"),
              width=16, mappings=[value_map({"0": ("failing", "red"), "1": ("ok", "green")})],
              description="Verifying probes and the HTTP-to-HTTPS redirect check. TLSProbeFailed, "
              "TLSCertificateUntrusted and TLSPlainHTTPServed explain a red bar."),
        panel(table.Panel(), "Negotiated TLS version",
              prom_table(f"probe_tls_version_info{{{VERIFY}}}", "{{instance}} {{version}}"), width=8,
              description="What a current client negotiates (blackbox_exporter offers TLS 1.2 and 1.3)."),
        panel(table.Panel(), "Legacy TLS (1.0/1.1) accepted",
              prom_table(f'probe_tls_version_info{{module="tls_legacy", {TARGET}}}', "{{instance}} {{version}}"),
              width=8, description="Sites that still complete a TLS 1.0/1.1 handshake: TLSLegacyProtocolOffered."),
        panel(timeseries.Panel(), "Probe duration", prom(f"probe_duration_seconds{{{VERIFY}}}", probe),
              unit="s", width=8, thresholds=[("green", None), ("red", 2)],
              description="TLSProbeSlow: average above 2 s for 15 minutes."),
    ]


def build() -> Dashboard:
    variables = [
        datasource_variable("datasource", "prometheus", "Prometheus"),
        query_variable("service", "Traefik service", "label_values(traefik_service_requests_total, service)"),
        query_variable("namespace", "Namespace", "label_values(kube_deployment_spec_replicas, namespace)"),
        query_variable("target", "Probed site", "label_values(probe_success, instance)"),
    ]
    return dashboard(
        "borgwatch-golden-signals",
        "Golden Signals",
        "Latency, traffic, errors, saturation: Traefik ingress and pods; TLS probes of the sites.",
        ["borgwatch", "ingress", "kubernetes"],
        variables,
        [*ingress_and_pods(), *tls_probe_panels()],
    )
