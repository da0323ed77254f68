"""The Kubernetes manifests under deploy/: rendered by `kubectl kustomize` (as a user would),
checked against the Kubernetes API schemas, checked for the promises they make to the gateway
(probe paths, drain time, config mount), and the shipped crossbar.toml started by the real
binary. No cluster or container runtime is needed (none exists on the CI machines)."""

import os
import pathlib
import re
import shutil
import subprocess
import tomllib
import urllib.request
import json

import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The oldest API version the manifests promise to work on (the preStop `sleep` action is 1.30).
K8S_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def rendered():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing: scripts/test installs Debian's kubernetes-client")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def test_every_resource_validates_strictly(rendered):
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Namespace",
        "PodDisruptionBudget",
        "Service",
        "Service",
        "Service",
    ]
    for doc in rendered:
        # Raises ValidationError on an unknown or mistyped field (strict).
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_typo_is_caught_by_the_validation(rendered):
    deployment = json.loads(json.dumps(by_kind(rendered, "Deployment")))
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecondz"] = 40
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_probes_drain_and_config_match_the_gateway(rendered):
    deployment = by_kind(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == 4000
    assert container["args"] == [
        "serve", "--config", "/etc/crossbar/crossbar.toml", "--listen", "0.0.0.0:4000",
    ]

    # Kubernetes must not kill a replica that is still draining: the grace period covers the
    # preStop pause plus the gateway's own shutdown_grace_s.
    config = tomllib.loads((DEPLOY / "crossbar.toml").read_text())
    drain = config["server"]["shutdown_grace_s"]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= drain + pause, (drain, pause)

    # The mounted ConfigMap is the generated one (its hashed name), holding crossbar.toml as is.
    configmap = by_kind(rendered, "ConfigMap")
    assert re.fullmatch(r"crossbar-config-[a-z0-9]+", configmap["metadata"]["name"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert configmap["data"]["crossbar.toml"] == (DEPLOY / "crossbar.toml").read_text()

    # Secrets come from a Secret reference, never from the rendered tree.
    assert container["envFrom"] == [{"secretRef": {"name": "crossbar-secrets"}}]
    assert not [d for d in rendered if d["kind"] == "Secret"]

    # The Service, the PDB and the HPA select / scale exactly this Deployment's pods.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        by_kind(rendered, "Service", "crossbar")["spec"]["selector"],
        by_kind(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items(), selector
    hpa = by_kind(rendered, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "crossbar",
    }
    assert hpa["spec"]["minReplicas"] >= by_kind(rendered, "PodDisruptionBudget")["spec"]["minAvailable"]


def test_the_container_file_runs_what_the_deployment_runs(rendered):
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (container,) = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    cmd = re.search(r'^CMD (\[.*\])$', dockerfile, re.M).group(1)
    assert json.loads(cmd) == container["args"]
    assert re.search(r"^EXPOSE 4000$", dockerfile, re.M)
    uid = re.search(r"^USER (\d+)$", dockerfile, re.M).group(1)
    pod = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    rust = re.search(r"^FROM rust:([0-9.]+)", dockerfile, re.M).group(1)
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert rust == workspace["workspace"]["package"]["rust-version"]


def test_the_shipped_config_starts_the_gateway(tmp_path):
    """deploy/crossbar.toml with the Secret's variables set: the real binary starts, is ready
    (Redis out of reach only degrades it), and serves the two configured models to the key."""
    binary = os.environ.get("CROSSBAR_BIN", str(ROOT / "target" / "debug" / "crossbar"))
    env = {
        k: v for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith(("AWS_", "GOOGLE_"))
    }
    env.update(
        CROSSBAR_KEY="sk-deploy-test",
        CROSSBAR_ADMIN_TOKEN="admin-deploy-test",
        OPENAI_API_KEY="sk-unused",
        ANTHROPIC_API_KEY="sk-ant-unused",
        CROSSBAR_STORE_URL=f"sqlite://{tmp_path}/crossbar.db?mode=rwc",
        # Nothing listens on port 1: Redis is "away", as in a fresh cluster with a bad URL.
        CROSSBAR_REDIS_URL="redis://127.0.0.1:1",
    )
    proc = subprocess.Popen(
        [binary, "serve", "--config", str(DEPLOY / "crossbar.toml"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("crossbar listening on "), line
        url = line.removeprefix("crossbar listening on ")
        with urllib.request.urlopen(f"{url}/readyz", timeout=10) as r:
            ready = json.load(r)
            assert r.status == 200
        assert ready["deployments"] == 2
        assert ready["status"] == "degraded"
        assert ready["shared_state"] == "unreachable"
        assert ready["store"] == "ok"
        request = urllib.request.Request(
            f"{url}/v1/models", headers={"Authorization": "Bearer sk-deploy-test"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            ids = sorted(m["id"] for m in json.load(r)["data"])
        assert ids == ["claude-haiku", "gpt-4o-mini"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=40) == 0
