"""Offline checks of deploy/compose, deploy/k8s and deploy/grafana: no cluster, no Docker.

- every YAML parses; built-in Kubernetes kinds validate against the Kubernetes JSON schemas that
  the ``kubernetes-validate`` package ships (strict: unknown fields fail);
- custom resources (Strimzi, ECK, KEDA, Prometheus Operator) are checked structurally: their CRD
  schemas are not available from a package registry in a form Python can use;
- docker-compose.yml validates against the compose-spec schema vendored in deploy/compose/;
- cross-checks: EARSHOT_* names are Settings fields, commands are real ``earshot`` commands,
  KEDA never scales past the partitions, the dashboard uses only exported metrics, no secrets.
"""

from __future__ import annotations

import os

import json
import re
import shlex
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from pipeline.settings import Settings


def pristine_settings(**fields) -> Settings:
    """Settings from defaults (plus ``fields``) only: not from this process's EARSHOT_* variables,
    which other tests in the session set (topic and index prefixes)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("EARSHOT_")}
    for key in saved:
        del os.environ[key]
    try:
        return Settings(_env_file=None, **fields)
    finally:
        os.environ.update(saved)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S_DIR = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "earshot-dashboard.json"
K8S_VERSION = "1.30"  # oldest Kubernetes minor the manifests are meant for

# The metric names the code exports (pipeline/metrics.py): the dashboard's contract.
METRICS = {
    "earshot_mentions_in_total": "counter",
    "earshot_mentions_out_total": "counter",
    "earshot_consumer_lag": "gauge",
    "earshot_enrich_batch_seconds": "histogram",
    "earshot_es_bulk_seconds": "histogram",
    "earshot_es_bulk_failures_total": "counter",
    "earshot_dlq_total": "counter",
    "earshot_open_alerts": "gauge",
    "earshot_webhook_failures_total": "counter",
    "earshot_http_requests_total": "counter",
    "earshot_http_request_seconds": "histogram",
}
CUSTOM_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("elasticsearch.k8s.elastic.co/v1", "Elasticsearch"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
}
NOT_IN_KUSTOMIZATION = {"secrets.template.yaml", "podmonitor.yaml"}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY$)")
EARSHOT_VAR = re.compile(r"\bEARSHOT_[A-Z0-9_]+\b")


def yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in {".yml", ".yaml"})


@lru_cache(maxsize=None)
def k8s_docs() -> tuple[tuple[str, dict], ...]:
    """(file name, document) for every non-empty document under deploy/k8s."""
    out = []
    for path in yaml_files(K8S_DIR):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((path.name, doc))
    return tuple(out)


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in k8s_docs() if doc.get("kind") == kind]


@lru_cache(maxsize=1)
def compose() -> dict:
    return yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text(encoding="utf-8"))


def pod_specs() -> list[tuple[str, dict]]:
    """(workload name, pod spec) of every Deployment, StatefulSet and Job."""
    return [(doc["metadata"]["name"], doc["spec"]["template"]["spec"])
            for _, doc in k8s_docs() if doc["kind"] in {"Deployment", "StatefulSet", "Job"}]


def configmap() -> dict[str, str]:
    (cm,) = [doc for doc in by_kind("ConfigMap") if doc["metadata"]["name"] == "earshot-config"]
    return cm["data"]


def topic_partitions() -> dict[str, int]:
    return {doc["spec"].get("topicName", doc["metadata"]["name"]): doc["spec"]["partitions"]
            for doc in by_kind("KafkaTopic")}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?message} with an empty environment."""
    return re.sub(r"\$\{[A-Z0-9_]+(?::?-([^}]*))?(?::?\?[^}]*)?\}", lambda m: m.group(1) or "x", value)


# --- parsing and schemas ------------------------------------------------------------------------

@pytest.mark.parametrize("path", yaml_files(DEPLOY), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert docs, f"{path} holds no document"


def test_builtin_kinds_validate_against_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for name, doc in k8s_docs():
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS or doc["kind"] == "Kustomization":
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 10


def test_every_kind_is_known() -> None:
    builtin = {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "Job", "PersistentVolumeClaim",
               "NetworkPolicy", "PodDisruptionBudget", "Kustomization"}
    for name, doc in k8s_docs():
        assert doc["kind"] in builtin or (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS, (name, doc["kind"])
        if doc["kind"] not in {"Kustomization", "Namespace"}:
            assert doc["metadata"]["namespace"] == "earshot", (name, doc["metadata"]["name"])


def test_kustomization_lists_every_manifest_but_the_templates() -> None:
    (kustomization,) = by_kind("Kustomization")
    listed = set(kustomization["resources"])
    files = {p.name for p in yaml_files(K8S_DIR)} - {"kustomization.yaml"}
    assert listed == files - NOT_IN_KUSTOMIZATION
    assert all((K8S_DIR / name).exists() for name in listed)


def test_compose_file_validates_against_the_compose_spec() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((COMPOSE_DIR / "compose-spec.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


# --- custom resources, structurally -------------------------------------------------------------

def test_strimzi_cluster_node_pool_and_topics_fit_together() -> None:
    (kafka,) = by_kind("Kafka")
    cluster = kafka["metadata"]["name"]
    assert kafka["spec"]["kafka"]["version"].startswith("3.9.")  # aiokafka 0.14 needs Kafka < 4
    assert kafka["spec"]["kafka"]["listeners"], "Kafka needs listeners"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert "zookeeper" not in kafka["spec"]
    pools = by_kind("KafkaNodePool")
    assert pools and all(p["metadata"]["labels"]["strimzi.io/cluster"] == cluster for p in pools)
    roles = {role for p in pools for role in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    min_isr = int(kafka["spec"]["kafka"]["config"]["min.insync.replicas"])
    for topic in by_kind("KafkaTopic"):
        spec = topic["spec"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert 1 <= spec["partitions"] and min_isr < spec["replicas"] <= brokers, topic["metadata"]["name"]
    # Every topic earshot writes, under its real name (Settings derives them once).
    settings = pristine_settings(app_id=configmap()["EARSHOT_APP_ID"])
    wanted = {settings.topic_raw, settings.topic_enriched, settings.topic_dlq, settings.topic_by_brand,
              settings.topic_alerts, settings.topic_webhooks_dlq}
    assert wanted <= set(topic_partitions())


def test_topic_partitions_match_the_configmap() -> None:
    partitions = int(configmap()["EARSHOT_TOPIC_PARTITIONS"])
    for topic, count in topic_partitions().items():
        if "__assignor" not in topic:  # Faust's leader topic has one partition by design
            assert count == partitions, topic


def test_keda_scales_the_real_consumer_groups_within_the_partitions() -> None:
    app_id = configmap()["EARSHOT_APP_ID"]
    expected = {"earshot-worker": (app_id, "mentions.raw"), "earshot-spikes": (f"{app_id}-spikes", "mentions.by-brand")}
    deployments = {d["metadata"]["name"] for d in by_kind("Deployment")}
    partitions = topic_partitions()
    (kafka,) = by_kind("Kafka")
    scaled = by_kind("ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == set(expected)
    for obj in scaled:
        target = obj["spec"]["scaleTargetRef"]["name"]
        assert target in deployments
        assert 1 <= obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
        (trigger,) = obj["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert (meta["consumerGroup"], meta["topic"]) == expected[target]
        assert meta["bootstrapServers"].startswith(f"{kafka['metadata']['name']}-kafka-bootstrap")
        assert obj["spec"]["maxReplicaCount"] <= partitions[meta["topic"]], target
        assert int(meta["lagThreshold"]) > 0
    # A Deployment KEDA owns sets no replicas (a re-apply would fight the autoscaler).
    for deployment in by_kind("Deployment"):
        if deployment["metadata"]["name"] in expected:
            assert "replicas" not in deployment["spec"]


def test_the_consumer_groups_are_the_faust_app_ids() -> None:
    source = (ROOT / "pipeline" / "worker" / "app.py").read_text() + (ROOT / "pipeline" / "alerts" / "watcher.py").read_text()
    assert "make_app(settings.app_id," in source
    assert 'make_app(f"{settings.app_id}-spikes",' in source


def test_eck_secrets_and_services_are_wired_into_the_pods() -> None:
    (es,) = by_kind("Elasticsearch")
    name = es["metadata"]["name"]
    assert es["spec"]["version"].startswith("8.")
    assert all(ns["name"] and ns["count"] >= 1 for ns in es["spec"]["nodeSets"])
    assert configmap()["EARSHOT_ES_URL"] == f"https://{name}-es-http:9200"
    (kafka,) = by_kind("Kafka")
    assert configmap()["EARSHOT_KAFKA_BOOTSTRAP"].startswith(f"{kafka['metadata']['name']}-kafka-bootstrap:")
    for workload, spec in pod_specs():
        if workload == "earshot-connector-rss":
            continue  # connectors only talk to Kafka
        (container,) = spec["containers"]
        refs = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if e["name"] == "EARSHOT_ES_PASSWORD"]
        assert refs == [{"name": f"{name}-es-elastic-user", "key": "elastic"}], workload
        volumes = {v["name"]: v for v in spec["volumes"]}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "es-ca")
        assert volumes["es-ca"]["secret"]["secretName"] == f"{name}-es-http-certs-public"
        assert configmap()["EARSHOT_ES_CA_CERTS"] == f"{mount['mountPath']}/ca.crt"


# --- pods ---------------------------------------------------------------------------------------

def test_pods_run_as_non_root_read_only_with_resources() -> None:
    for workload, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, workload
            assert sc["capabilities"]["drop"] == ["ALL"], workload
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), workload
            assert "memory" in container["resources"]["limits"], workload
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/var/lib/earshot"} <= mounts, f"{workload}: needs writable /tmp and working dir"


def test_api_probes_and_service() -> None:
    (api,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "earshot-api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (service,) = by_kind("Service")
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    policies = [p for p in by_kind("NetworkPolicy") if p["spec"]["podSelector"].get("matchLabels") == service["spec"]["selector"]]
    assert policies and all("Ingress" in p["spec"]["policyTypes"] for p in policies)


def test_connector_checkpoints_are_on_a_persistent_volume() -> None:
    (connector,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "earshot-connector-rss"]
    assert connector["spec"]["replicas"] == 1 and connector["spec"]["strategy"]["type"] == "Recreate"
    spec = connector["spec"]["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    pvcs = {p["metadata"]["name"] for p in by_kind("PersistentVolumeClaim")}
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] in claims)
    assert claims[mount["name"]] in pvcs
    assert mount["mountPath"] == configmap()["EARSHOT_CHECKPOINT_DIR"]


# --- cross-checks with the code ---------------------------------------------------------------

def deploy_texts() -> dict[str, str]:
    paths = yaml_files(COMPOSE_DIR) + yaml_files(K8S_DIR) + sorted(COMPOSE_DIR.glob("*.example"))
    paths.append(COMPOSE_DIR / "Dockerfile")
    return {str(p.relative_to(DEPLOY)): p.read_text(encoding="utf-8") for p in paths}


def test_every_earshot_variable_is_a_settings_field() -> None:
    fields = set(Settings.model_fields)
    unknown = {(name, var) for name, text in deploy_texts().items() for var in EARSHOT_VAR.findall(text)
               if var.removeprefix("EARSHOT_").lower() not in fields}
    assert not unknown, sorted(unknown)


def earshot_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every earshot process in compose and k8s."""
    out = []
    for name, service in compose()["services"].items():
        if str(service.get("image", "")).startswith("earshot:"):
            command = service["command"]
            argv = shlex.split(command) if isinstance(command, str) else list(command)
            out.append((f"compose:{name}", [interpolate(str(a)) for a in argv]))
    for workload, spec in pod_specs():
        for container in spec["containers"]:
            assert str(container["image"]).startswith("earshot:"), workload
            out.append((f"k8s:{workload}", list(container["args"])))
    return out


def test_every_command_is_a_real_earshot_command() -> None:
    from cli.main import build_parser

    parser = build_parser()
    seen = set()
    for where, argv in earshot_commands():
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: 'earshot {' '.join(argv)}' is not a valid command line")
        seen.add(args.command)
    assert {"setup", "worker", "spikes", "api", "connect"} <= seen


def test_compose_services_are_wired() -> None:
    services = compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert set(depends) <= set(services), name
        for dep, rule in depends.items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which has no healthcheck"
    for name in ("worker", "spikes", "api"):
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in services[name]
    env = services["es01"]["environment"]
    assert env["xpack.security.enabled"] == "true" and env["xpack.security.http.ssl.enabled"] == "true"
    assert services["kafka"]["image"].startswith("apache/kafka:3.9.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert interpolate(services["es01"]["image"]).rsplit(":", 1)[1].startswith("8.19.")
    assert services["worker"]["deploy"]["replicas"]
    assert all(services[n]["profiles"] == ["connectors"] for n in services if n.startswith("connector-"))
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    worker_env = services["worker"]["environment"]
    assert worker_env["EARSHOT_ES_URL"].startswith("https://")


def test_compose_bind_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source}"


def test_prometheus_scrapes_the_compose_services_on_their_ports() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    defaults = pristine_settings()
    targets = {sd["names"][0]: sd["port"] for job in config["scrape_configs"] for sd in job["dns_sd_configs"]}
    assert targets == {"worker": defaults.worker_web_port, "spikes": defaults.spikes_web_port, "api": 8000}
    assert set(targets) <= set(compose()["services"])


def test_dockerfile_installs_from_the_lock_as_non_root() -> None:
    text = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install -c requirements.lock ." in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("root", "0"))
    assert "COPY models" in text  # the trained weights ship in the image
    assert not re.search(r"^ENV .*(PASSWORD|SECRET|TOKEN)", text, re.M)


# --- no secrets in the repository ---------------------------------------------------------------

def test_secret_manifests_hold_no_values() -> None:
    secrets = by_kind("Secret")
    assert secrets
    for secret in secrets:
        values = {**secret.get("data", {}), **secret.get("stringData", {})}
        assert all(v in ("", None) for v in values.values()), secret["metadata"]["name"]


def test_compose_takes_secrets_from_the_env_file_only() -> None:
    for name, service in compose()["services"].items():
        env = service.get("environment", {})
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:\?[^}]*)?\}", str(value)), f"{name}: {key} is not taken from .env"
    for example in COMPOSE_DIR.glob("*.example"):
        for line in example.read_text(encoding="utf-8").splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                if SECRET_NAME.search(key):
                    assert value in ("", "CHANGE_ME"), f"{example.name}: {key}"
    ignored = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert {".env", "connectors.env"} <= set(ignored)


# --- Grafana ------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_dashboard_is_a_grafana_dashboard_with_a_datasource_variable() -> None:
    dash = dashboard()
    assert 36 <= dash["schemaVersion"] <= 41 and dash["uid"] and dash["title"]
    assert any(v["name"] == "DS_PROMETHEUS" and v["type"] == "datasource" for v in dash["templating"]["list"])
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])


def test_dashboard_uses_only_exported_metrics_and_all_of_them() -> None:
    allowed = set()
    for name, kind in METRICS.items():
        allowed |= {name} | ({f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else set())
    used = {m for expr in dashboard_exprs() for m in re.findall(r"\bearshot_[a-z0-9_]+\b", expr)}
    assert used <= allowed, used - allowed
    assert {m.removesuffix("_bucket") for m in used} >= set(METRICS)
    for expr in dashboard_exprs():
        if "histogram_quantile" in expr:
            assert "_bucket" in expr and "le" in expr, expr


def test_dashboard_metrics_are_the_ones_the_code_defines() -> None:
    sources = [ROOT / "pipeline" / "metrics.py", ROOT / "api" / "metrics.py"]
    text = "".join(p.read_text(encoding="utf-8") for p in sources if p.exists())
    if not text:
        pytest.skip("pipeline/metrics.py not there yet")
    missing = [name for name in METRICS if f'"{name.removesuffix("_total")}' not in text]
    assert not missing, missing
