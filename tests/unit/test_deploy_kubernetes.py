"""deploy/kubernetes: the base and every overlay render with kustomize (`kubectl kustomize`, no
cluster), every rendered manifest passes the Kubernetes schema (kubernetes-validate, strict, with
the schemas it ships offline), and the manifests hold what the services need: probes on the real
endpoints, resources, disruption budgets, grace above each drain bound, the migration Job, HPAs
(the detector's up to HERON_SHARDS), and an environment, built as the kubelet would from the
ConfigMap and the Secret's template, that starts each service."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.support.deploy import (
    BASE,
    DRAIN_MARGIN,
    OTHER_VARIABLES,
    OVERLAYS,
    SERVICES,
    drain_bound,
    fernet_key,
    kustomize,
    load_yaml_documents,
    start_service,
    variables_read,
    variables_to_set,
)

PORTS = {"ingest": 8080, "detector": 8081, "notifier": 8082, "prober": 8083}
TARGETS = [BASE, *sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())]
SECRET_EXAMPLE = BASE / "secret.example.yaml"


@cache
def rendered(directory: Path) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(directory))


def _one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _workloads(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """Component name -> pod spec, for the four Deployments and the migrate Job."""
    out = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] in ("Deployment", "Job")
    }
    assert set(out) == {*SERVICES, "migrate"}, sorted(out)
    return out


def _id(path: Path) -> str:
    return path.name if path != BASE else "base"


def test_production_overlay_exists() -> None:
    assert (OVERLAYS / "production" / "kustomization.yaml").exists()
    assert OVERLAYS / "production" in TARGETS


@pytest.mark.parametrize("target", TARGETS, ids=_id)
def test_every_rendered_manifest_passes_the_kubernetes_schema(target: Path) -> None:
    version = kubernetes_validate.latest_version()
    docs = [*rendered(target), *load_yaml_documents(SECRET_EXAMPLE)]
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}"
            ) from None


def test_the_schema_check_rejects_a_broken_manifest() -> None:
    """The check above means something: a typo'd field and a wrong type both fail it."""
    deployment = _one(rendered(BASE), "Deployment", "heron-ingest")
    version = kubernetes_validate.latest_version()
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, version, strict=True)
    wrong = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, version, strict=True)


@pytest.mark.parametrize("target", TARGETS, ids=_id)
def test_namespace_and_pinned_images(target: Path) -> None:
    for doc in rendered(target):
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "heron", f"{doc['kind']}/{doc['metadata']['name']}"
    for name, workload in _workloads(rendered(target)).items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            image = container["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert (tag and tag != "latest") or "@sha256:" in image, f"{name}: {image} must name an exact tag"


@pytest.mark.parametrize("target", TARGETS, ids=_id)
def test_probes_resources_budgets_and_grace(target: Path) -> None:
    docs = rendered(target)
    env = {"HERON_SECRETS_KEY": fernet_key()}
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: d
        for d in docs
        if d["kind"] == "PodDisruptionBudget"
    }
    for name, workload in _workloads(docs).items():
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        expected = ["heron-migrate"] if name == "migrate" else [f"heron-{name}"]
        assert container["args"] == expected, name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name}: {kind}"
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        if name == "migrate":
            assert workload["kind"] == "Job" and pod["restartPolicy"] == "Never"
            continue
        assert workload["kind"] == "Deployment"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": PORTS[name]}, name
        # /readyz reports the consuming state (libs/heron_common/service.py: connections up,
        # every queue the process should consume subscribed, not shutting down); /healthz only
        # that the process answers. Their behaviour is tested in tests/integration.
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert name in budgets, f"{name}: no PodDisruptionBudget"
        # Grace: the preStop pause, then the drain (each background loop in turn), then a margin.
        pause = 0.0
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        if pre_stop[:1] == ["sleep"]:
            pause = float(pre_stop[1])
        bound = drain_bound(name, env) + pause
        grace = pod["terminationGracePeriodSeconds"]
        assert grace >= bound + DRAIN_MARGIN, f"{name}: grace {grace} s, but stopping may take {bound:g} s"


def test_production_autoscales_ingest_on_cpu_and_detectors_up_to_the_shard_count() -> None:
    docs = rendered(OVERLAYS / "production")
    shards = int(_one(docs, "ConfigMap", "heron-config")["data"]["HERON_SHARDS"])
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"heron-ingest", "heron-detector"}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu", name
        assert hpa["spec"]["minReplicas"] >= 2, f"{name}: at least two, for availability"
        # The HPA owns the count: a replicas field in the applied Deployment would reset it.
        assert "replicas" not in _one(docs, "Deployment", name)["spec"], name
    assert hpas["heron-detector"]["spec"]["maxReplicas"] == shards, "more detectors than shards sit idle"


def _secret_example() -> dict[str, str]:
    (secret,) = load_yaml_documents(SECRET_EXAMPLE)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "heron-secrets"
    return secret["stringData"]


def test_the_secret_is_a_template_only() -> None:
    values = _secret_example()
    for key, value in values.items():
        assert "CHANGE-ME" in value, f"{key}: the template holds placeholders, never a real value"
    assert "secret.yaml" in (BASE.parents[2] / ".gitignore").read_text()
    for target in TARGETS:
        assert not any(d["kind"] == "Secret" for d in rendered(target)), "the Secret is applied on its own"


def _container_env(workload: dict[str, Any], config: dict[str, str], files: Path) -> dict[str, str]:
    """The environment the kubelet gives the container: the ConfigMap (envFrom), then env; each
    ``*_FILE`` path that lands in a mounted Secret volume is pointed at a file holding the
    template's value (a valid key stands in for the secrets-key placeholder)."""
    secrets = {**_secret_example(), "secrets-key": fernet_key()}
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted: dict[str, str] = {}  # path in the container -> secret key
    for mount in container["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret:
            assert secret["secretName"] == "heron-secrets"
            for item in secret["items"]:
                assert item["key"] in secrets, f"{item['key']} is mounted but not in secret.example.yaml"
                mounted[f"{mount['mountPath']}/{item['path']}"] = item["key"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "heron-config"
        env.update(config)
    for entry in container.get("env", []):
        assert "value" in entry, f"{entry['name']}: only literal values (secrets come as files)"
        value = entry["value"]
        if entry["name"].endswith("_FILE"):
            assert value in mounted, f"{entry['name']}={value}: the pod mounts no such file"
            path = files / mounted[value]
            path.write_text(secrets[mounted[value]] + "\n")
            value = str(path)
        env[entry["name"]] = value
    return env


@pytest.mark.parametrize("target", TARGETS, ids=_id)
def test_the_environment_of_each_pod_starts_its_service(target: Path, tmp_path: Path) -> None:
    """Every setting a service needs has a value, from the ConfigMap or a mounted Secret file: a
    setting that becomes required, or a secret file that is not mounted, fails here."""
    docs = rendered(target)
    config = _one(docs, "ConfigMap", "heron-config")["data"]
    read = variables_read() | OTHER_VARIABLES
    unknown = {k for k in config if k.startswith("HERON_")} - read
    assert not unknown, f"heron-config: {sorted(unknown)} are read by nothing (renamed? removed?)"
    for name, workload in _workloads(docs).items():
        env = _container_env(workload, config, tmp_path)
        start_service(name, env)
        unknown = {k for k in env if k.startswith("HERON_")} - read
        assert not unknown, f"{name}: {sorted(unknown)} are read by nothing"
        given = {k.removesuffix("_FILE") for k in env}
        needed = variables_to_set() - ({"HERON_REDIS_URL", "HERON_AMQP_URL"} if name == "migrate" else set())
        assert not needed - given, f"{name}: set {sorted(needed - given)}"
        if name in ("ingest", "notifier", "migrate"):  # seal/open webhook secrets; migrate re-seals
            assert "HERON_SECRETS_KEY" in given, name
    ingest = {k.removesuffix("_FILE") for k in _container_env(_workloads(docs)["ingest"], config, tmp_path)}
    # Several ingest replicas must sign sessions alike; the admin token enables administration.
    assert {"HERON_SESSION_SECRET", "HERON_ADMIN_TOKEN"} <= ingest
