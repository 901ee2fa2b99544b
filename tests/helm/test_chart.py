"""The Helm chart that installs the control plane (helm/controlplane).

Rendering tests check what each set of values produces and that bad values are refused
with the chart's own message. Cluster tests apply the rendered chart to a real API server
(server-side dry run, then for real, in a namespace that enforces the "restricted" Pod
Security Standard), ask the API server what the control plane's ServiceAccount may do
(`kubectl auth can-i`), and install, upgrade and uninstall it with helm itself. The RBAC
must allow exactly what controlplane/kube/driver.py does: never secrets, configmaps or
pods/exec, and only in the namespaces it manages.

helm comes from ${CONTROLPLANE_CACHE:-~/.cache/controlplane}/helm-<version>/bin/helm,
built by hack/helm/build.sh on first use.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.kube import KubeDriver, PermanentKubeError, Track, Workload
from controlplane.kube.client import KubeApi
from controlplane.models import RoutingMode
from tests.support.cluster import NAMESPACE, SERVICE_ACCOUNT, wait_for

pytestmark = pytest.mark.helm

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "controlplane"
HELM_BUILD_SH = REPO / "hack" / "helm" / "build.sh"
CACHE = Path(os.environ.get("CONTROLPLANE_CACHE") or Path.home() / ".cache" / "controlplane")

RELEASE = "cp"
RELEASE_NAMESPACE = "llm-system"
FULLNAME = f"{RELEASE}-controlplane"
TOKEN = "s3cr3t-admin-token-for-tests-0123456789abcdef"
POSTGRES_URL = "postgresql://controlplane:pg-password@db.example:5432/controlplane"
SEALING_KEY = "sealing-key-for-tests-0123456789abcdef"
OLD_SEALING_KEY = "old-sealing-key-for-tests-0123456789abcd"
# what the pod runs: in a container, the server listens on every interface
SERVE = ["serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104

Manifest = dict[str, Any]

# What the driver does (controlplane/kube/driver.py), and so all the chart may grant.
WRITE_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
READ_VERBS = {"get", "list", "watch"}
ALLOWED_RULES: dict[tuple[str, str], set[str]] = {
    ("apps", "deployments"): WRITE_VERBS,
    ("", "services"): WRITE_VERBS,
    ("gateway.networking.k8s.io", "httproutes"): WRITE_VERBS,
    ("inference.networking.k8s.io", "inferencepools"): WRITE_VERBS,
    # adapter models (controlplane/kube/adapters.py): the weighted model-name rewrite, in
    # either group a cluster may serve, and the readiness gate on the pool's pods
    ("llm-d.ai", "inferencemodelrewrites"): WRITE_VERBS,
    ("inference.networking.x-k8s.io", "inferencemodelrewrites"): WRITE_VERBS,
    ("", "pods/status"): {"patch"},
    ("", "pods"): READ_VERBS,
    ("", "events"): READ_VERBS,
    ("", "nodes"): {"get", "list"},
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {"adminToken": TOKEN},
    "postgres-ha-existing-secret": {
        "replicas": 3,
        "existingSecret": {"name": "cp-credentials", "databaseUrlKey": "database-url"},
        "migrationJob": {"enabled": True},
    },
    "postgres-chart-secret": {
        "adminToken": TOKEN,
        "secretKeys": SEALING_KEY,
        "database": {"url": POSTGRES_URL},
        "replicas": 2,
        "migrationJob": {"enabled": True},
    },
    "cluster-wide": {"adminToken": TOKEN, "rbac": {"clusterWide": True}},
    "gateway-api-off": {
        "adminToken": TOKEN,
        "rbac": {"gatewayApi": False, "inferencePools": True, "readNodes": False},
    },
    "adapters-cluster-wide": {
        "adminToken": TOKEN,
        "rbac": {"clusterWide": True, "adapters": True, "adapterReadinessGate": True},
    },
    "service-monitor": {
        "adminToken": TOKEN,
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    },
    "several-namespaces": {
        "adminToken": TOKEN,
        "rbac": {"namespaces": ["team-a", "team-b", "team-a"]},
    },
    "persistent-sqlite": {
        "adminToken": TOKEN,
        "persistence": {"enabled": True, "size": "5Gi", "storageClass": "fast"},
        "config": {"logLevel": "DEBUG", "extra": {"CONTROLPLANE_DEV_MODE": "false"}},
    },
}


# --- helpers ----------------------------------------------------------------------------


def _k8s_version() -> str:
    """The Kubernetes version hack/cluster builds kubectl for (its lib.sh pins it)."""
    lib = (REPO / "hack" / "cluster" / "lib.sh").read_text()
    found = re.search(r'K8S_VERSION="\$\{K8S_VERSION:-(v[0-9.]+)\}"', lib)
    return os.environ.get("K8S_VERSION") or (found.group(1) if found else "v1.36.3")


KUBECTL = CACHE / f"k8s-{_k8s_version()}" / "bin" / "kubectl"


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """The cached helm; hack/helm/build.sh returns at once when it is there and builds it
    from the Go module proxy (a few minutes, once) when it is not."""
    built = subprocess.run(
        [str(HELM_BUILD_SH)], capture_output=True, text=True, check=False, timeout=3600
    )
    if built.returncode != 0:
        pytest.fail(f"hack/helm/build.sh failed:\n{built.stderr[-4000:]}")
    path = Path(built.stdout.strip().splitlines()[-1])
    assert path.is_file(), path
    assert path.is_relative_to(CACHE), path
    return path


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """helm's own cache, config and data in a throwaway folder, not the user's home."""
    home = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def helm(helm_bin: Path, helm_env: dict[str, str]) -> Helm:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(helm_bin), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=helm_env,
        )
        if check and done.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    return run


@pytest.fixture(scope="session")
def values_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-values")


def values_file(directory: Path, values: dict[str, Any]) -> Path:
    """Values as a file (JSON is YAML): types stay as written, unlike with --set."""
    path = directory / f"values-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(values))
    return path


Render = Callable[..., list[Manifest]]


@pytest.fixture(scope="session")
def render(helm: Helm, values_dir: Path) -> Render:
    def run(values: dict[str, Any], *, namespace: str = RELEASE_NAMESPACE) -> list[Manifest]:
        done = helm(
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            namespace,
            "--values",
            str(values_file(values_dir, values)),
        )
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    return run


def refusal(helm: Helm, values_dir: Path, values: dict[str, Any]) -> str:
    done = helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--values",
        str(values_file(values_dir, values)),
        check=False,
    )
    assert done.returncode != 0, f"helm template accepted {values}:\n{done.stdout}"
    return " ".join(done.stderr.split())


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in of_kind(manifests, kind) if name in (None, m["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(manifests: list[Manifest], kind: str = "Deployment") -> Manifest:
    containers: list[Manifest] = one(manifests, kind)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(spec: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in spec.get("env", [])}


def granted(rules: list[Manifest]) -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def is_hook(manifest: Manifest) -> bool:
    return "helm.sh/hook" in (manifest["metadata"].get("annotations") or {})


# --- rendering --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_passes_strictly(helm: Helm, values_dir: Path, name: str) -> None:
    done = helm(
        "lint",
        "--strict",
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--values",
        str(values_file(values_dir, VALUE_SETS[name])),
    )
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_value_set_renders_a_locked_down_least_privilege_install(
    render: Render, name: str
) -> None:
    manifests = render(VALUE_SETS[name])

    for manifest in manifests:
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "controlplane"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["helm.sh/chart"] == "controlplane-0.1.0"

    # RBAC: nothing beyond what the driver uses; never secrets, configmaps or pods/exec.
    for role in of_kind(manifests, "Role") + of_kind(manifests, "ClusterRole"):
        for (group, resource), verbs in granted(role["rules"]).items():
            assert (group, resource) in ALLOWED_RULES, f"{role['metadata']['name']}: {resource}"
            assert verbs <= ALLOWED_RULES[(group, resource)], (resource, verbs)
        text = json.dumps(role["rules"])
        for forbidden in ("secrets", "configmaps", "pods/exec", "*", "escalate", "bind"):
            assert f'"{forbidden}"' not in text

    # The token is in the Secret only (base64), never in the ConfigMap or a pod spec.
    configmap = one(manifests, "ConfigMap", FULLNAME)
    assert set(configmap["data"]) >= {
        "CONTROLPLANE_LOG_FORMAT",
        "CONTROLPLANE_LOG_LEVEL",
        "CONTROLPLANE_AUTO_MIGRATE",
    }
    assert not {"CONTROLPLANE_ADMIN_TOKEN", "CONTROLPLANE_DATABASE_URL"} & set(configmap["data"])
    for manifest in manifests:
        if manifest["kind"] != "Secret":
            assert TOKEN not in json.dumps(manifest), manifest["kind"]
            assert "pg-password" not in json.dumps(manifest), manifest["kind"]

    # The server: hardened, probed, settings from the ConfigMap, secrets from the Secret.
    deployment = one(manifests, "Deployment", FULLNAME)
    pod = deployment["spec"]["template"]["spec"]
    server = container(manifests)
    assert server["command"] == ["controlplane"]
    assert server["args"][:5] == SERVE
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]
    assert "secretKeyRef" in env_of(server)["CONTROLPLANE_ADMIN_TOKEN"]["valueFrom"]
    assert server["resources"]["requests"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    hardening = server["securityContext"]
    assert hardening["runAsNonRoot"] is True
    assert hardening["runAsUser"] == 10001
    assert hardening["readOnlyRootFilesystem"] is True
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["capabilities"] == {"drop": ["ALL"]}
    assert hardening["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert {"name": "tmp", "mountPath": "/tmp"} in server["volumeMounts"]
    assert pod["serviceAccountName"] == FULLNAME

    service = one(manifests, "Service", FULLNAME)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == 8000
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert one(manifests, "ServiceAccount", FULLNAME)["automountServiceAccountToken"] is True


def test_defaults_run_one_sqlite_server_that_migrates_its_own_file(render: Render) -> None:
    manifests = render(VALUE_SETS["defaults"])
    deployment = one(manifests, "Deployment")
    server = container(manifests)

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--no-migrate" not in server["args"]
    assert env_of(server)["CONTROLPLANE_DATABASE_URL"] == {
        "name": "CONTROLPLANE_DATABASE_URL",
        "value": "sqlite:////var/lib/controlplane/controlplane.db",
    }
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert {"name": "data", "mountPath": "/var/lib/controlplane"} in server["volumeMounts"]
    assert not of_kind(manifests, "PersistentVolumeClaim")
    assert not of_kind(manifests, "Job")
    assert not of_kind(manifests, "ServiceMonitor")

    secret = one(manifests, "Secret", FULLNAME)
    assert base64.b64decode(secret["data"]["admin-token"]).decode() == TOKEN
    assert set(secret["data"]) == {"admin-token"}
    assert env_of(server)["CONTROLPLANE_ADMIN_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": FULLNAME, "key": "admin-token"}
    }
    assert one(manifests, "ConfigMap")["data"] == {
        "CONTROLPLANE_LOG_FORMAT": "json",
        "CONTROLPLANE_LOG_LEVEL": "INFO",
        "CONTROLPLANE_AUTO_MIGRATE": "true",
        "CONTROLPLANE_DATABASE_POOL_SIZE": "10",
        "CONTROLPLANE_MAX_BODY_BYTES": "1048576",
        "CONTROLPLANE_PAGE_SIZE_MAX": "500",
        "CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS": "",
        "CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "false",
    }
    assert "CONTROLPLANE_SECRET_KEYS" not in env_of(server)  # no key given, none invented

    # RBAC: one Role in the release namespace, the small node reader cluster-wide.
    role = one(manifests, "Role")
    assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert granted(role["rules"]) == {
        ("apps", "deployments"): WRITE_VERBS,
        ("", "services"): WRITE_VERBS,
        ("gateway.networking.k8s.io", "httproutes"): WRITE_VERBS,
        ("", "pods"): READ_VERBS,
        ("", "events"): READ_VERBS,
    }
    binding = one(manifests, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": FULLNAME,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}
    ]
    nodes = one(manifests, "ClusterRole")
    assert nodes["metadata"]["name"] == f"{FULLNAME}-{RELEASE_NAMESPACE}-nodes"
    assert granted(nodes["rules"]) == {("", "nodes"): {"get", "list"}, ("", "pods"): {"list"}}
    assert one(manifests, "ClusterRoleBinding")["roleRef"]["name"] == nodes["metadata"]["name"]


def test_postgres_replicas_with_an_existing_secret_migrate_once_in_a_hook(
    render: Render,
) -> None:
    manifests = render(VALUE_SETS["postgres-ha-existing-secret"])
    deployment = one(manifests, "Deployment")
    server = container(manifests)

    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert server["args"] == [*SERVE, "--no-migrate"]
    assert not of_kind(manifests, "Secret"), "an existing Secret is used as it is"
    from_secret = {"name": "cp-credentials", "key": "database-url"}
    assert env_of(server)["CONTROLPLANE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == from_secret
    assert env_of(server)["CONTROLPLANE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "cp-credentials",
        "key": "admin-token",
    }
    volumes = {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes == {"tmp"}, "no SQLite volume with PostgreSQL"

    job = one(manifests, "Job", f"{FULLNAME}-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    migrate = container(manifests, "Job")
    assert migrate["command"] == ["controlplane"]
    assert migrate["args"] == ["db", "upgrade"]
    assert env_of(migrate)["CONTROLPLANE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == from_secret
    assert "CONTROLPLANE_ADMIN_TOKEN" not in env_of(migrate)
    job_pod = job["spec"]["template"]
    assert job_pod["spec"]["automountServiceAccountToken"] is False
    assert job_pod["spec"]["restartPolicy"] == "Never"
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True
    # the Service must not send requests to the migration pod
    selector = one(manifests, "Service")["spec"]["selector"]
    assert not selector.items() <= job_pod["metadata"]["labels"].items()


def test_postgres_url_from_values_goes_into_secrets_the_hook_can_read_before_install(
    render: Render,
) -> None:
    manifests = render(VALUE_SETS["postgres-chart-secret"])
    secret = one(manifests, "Secret", FULLNAME)
    assert not is_hook(secret)
    assert base64.b64decode(secret["data"]["database-url"]).decode() == POSTGRES_URL
    assert env_of(container(manifests))["CONTROLPLANE_DATABASE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": FULLNAME, "key": "database-url"}
    }

    # Hooks run before the release's Secret exists: the Job reads its own hook Secret,
    # created first (lower weight) and holding the database URL only.
    hook_secret = one(manifests, "Secret", f"{FULLNAME}-migrate")
    job = one(manifests, "Job")
    assert is_hook(hook_secret)
    assert base64.b64decode(hook_secret["data"]["database-url"]).decode() == POSTGRES_URL
    assert set(hook_secret["data"]) == {"database-url"}
    weight = int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert env_of(container(manifests, "Job"))["CONTROLPLANE_DATABASE_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": f"{FULLNAME}-migrate", "key": "database-url"}
    }


def test_sealing_keys_go_into_the_secret_and_webhook_networks_into_the_config(
    render: Render,
) -> None:
    manifests = render(
        {
            "adminToken": TOKEN,
            "secretKeys": f"{SEALING_KEY},{OLD_SEALING_KEY}",
            "config": {"webhooks": {"allowedCidrs": "10.96.0.0/12, fd00::/8"}},
        }
    )
    secret = one(manifests, "Secret", FULLNAME)
    keys = base64.b64decode(secret["data"]["secret-keys"]).decode()
    assert keys == f"{SEALING_KEY},{OLD_SEALING_KEY}"
    server = container(manifests)
    assert env_of(server)["CONTROLPLANE_SECRET_KEYS"]["valueFrom"] == {
        "secretKeyRef": {"name": FULLNAME, "key": "secret-keys"}
    }
    config = one(manifests, "ConfigMap")["data"]
    assert config["CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS"] == "10.96.0.0/12, fd00::/8"
    assert SEALING_KEY not in json.dumps([m for m in manifests if m["kind"] != "Secret"])

    mine = render(
        {"existingSecret": {"name": "mine", "secretKeysKey": "sealing"}, "secretKeys": "x"}
    )
    assert not of_kind(mine, "Secret")
    assert env_of(container(mine))["CONTROLPLANE_SECRET_KEYS"]["valueFrom"] == {
        "secretKeyRef": {"name": "mine", "key": "sealing"}
    }


def test_cluster_wide_rbac_is_one_cluster_role_with_the_same_rules(render: Render) -> None:
    namespaced = render(VALUE_SETS["defaults"])
    manifests = render(VALUE_SETS["cluster-wide"])

    assert not of_kind(manifests, "Role")
    assert not of_kind(manifests, "RoleBinding")
    cluster_role = one(manifests, "ClusterRole", f"{FULLNAME}-{RELEASE_NAMESPACE}")
    assert granted(cluster_role["rules"]) == granted(one(namespaced, "Role")["rules"])
    binding = one(manifests, "ClusterRoleBinding", f"{FULLNAME}-{RELEASE_NAMESPACE}")
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}
    ]


def test_gateway_api_off_drops_httproutes_and_inference_pools_can_be_added(
    render: Render,
) -> None:
    manifests = render(VALUE_SETS["gateway-api-off"])
    rules = granted(one(manifests, "Role")["rules"])
    assert ("gateway.networking.k8s.io", "httproutes") not in rules
    assert rules[("inference.networking.k8s.io", "inferencepools")] == WRITE_VERBS
    assert not of_kind(manifests, "ClusterRole"), "readNodes is off"
    assert not of_kind(manifests, "ClusterRoleBinding")


def test_rbac_covers_each_listed_namespace_once(render: Render) -> None:
    manifests = render(VALUE_SETS["several-namespaces"])
    roles = of_kind(manifests, "Role")
    bindings = of_kind(manifests, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}
        ]


def test_service_monitor_scrapes_the_service_metrics_port(render: Render) -> None:
    manifests = render(VALUE_SETS["service-monitor"])
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert service["spec"]["ports"][0]["name"] == "http"


def test_persistence_puts_sqlite_on_a_claim_kept_after_uninstall(render: Render) -> None:
    manifests = render(VALUE_SETS["persistent-sqlite"])
    claim = one(manifests, "PersistentVolumeClaim", f"{FULLNAME}-data")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    volumes = {
        v["name"]: v for v in one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": f"{FULLNAME}-data"}
    data = one(manifests, "ConfigMap")["data"]
    assert data["CONTROLPLANE_LOG_LEVEL"] == "DEBUG"
    assert data["CONTROLPLANE_DEV_MODE"] == "false"


def test_an_existing_service_account_without_chart_rbac(render: Render) -> None:
    manifests = render(
        {
            "adminToken": TOKEN,
            "serviceAccount": {"create": False, "name": "controlplane-sa"},
            "rbac": {"create": False},
        }
    )
    assert not of_kind(manifests, "ServiceAccount")
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert not of_kind(manifests, kind)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "controlplane-sa"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"adminToken": TOKEN, "replicas": 2},
            "replicas is 2 but the database is SQLite, a file only one pod may own: "
            "set database.url (or existingSecret.databaseUrlKey) to a PostgreSQL URL",
            id="replicas-on-sqlite",
        ),
        pytest.param(
            {"adminToken": TOKEN, "replicas": 3, "database": {"url": "sqlite:///x.db"}},
            "replicas is 3 but the database is SQLite",
            id="replicas-on-a-sqlite-url",
        ),
        pytest.param(
            {"adminToken": TOKEN, "replicas": "two"},
            "at '/replicas': got string, want integer",
            id="wrong-type",
        ),
        pytest.param(
            {"adminToken": TOKEN, "replica": 2},
            "additional properties 'replica' not allowed",
            id="unknown-key",
        ),
        pytest.param(
            {"adminToken": TOKEN, "rbac": {"clusterwide": True}},
            "at '/rbac': additional properties 'clusterwide' not allowed",
            id="misspelt-nested-key",
        ),
        pytest.param(
            {"adminToken": TOKEN, "config": {"logFormat": "yaml"}},
            "at '/config/logFormat'",
            id="log-format-not-in-enum",
        ),
        pytest.param(
            {"adminToken": TOKEN, "database": {"url": "mysql://db/cp"}},
            "at '/database/url'",
            id="unsupported-database",
        ),
        pytest.param(
            {},
            "adminToken is empty: the chart will not create a Secret without an admin token",
            id="no-admin-token",
        ),
        pytest.param(
            {"adminToken": "   "},
            "adminToken is empty",
            id="blank-admin-token",
        ),
        pytest.param(
            {"adminToken": TOKEN, "migrationJob": {"enabled": True}},
            "migrationJob.enabled needs PostgreSQL",
            id="migration-job-on-sqlite",
        ),
        pytest.param(
            {"adminToken": TOKEN, "config": {"extra": {"CONTROLPLANE_ADMIN_TOKEN": "x"}}},
            "config.extra.CONTROLPLANE_ADMIN_TOKEN would put a secret in the ConfigMap",
            id="token-in-configmap",
        ),
        pytest.param(
            {"existingSecret": {"name": "mine"}, "database": {"url": POSTGRES_URL}},
            "put the URL in your Secret and name its key in existingSecret.databaseUrlKey",
            id="postgres-url-beside-an-existing-secret",
        ),
        pytest.param(
            {"adminToken": TOKEN, "database": {"url": "sqlite:////data/cp.db"}},
            'the SQLite database "sqlite:////data/cp.db" is not on the data volume',
            id="sqlite-file-off-the-volume",
        ),
        pytest.param(
            {"adminToken": TOKEN, "serviceAccount": {"create": False}},
            "serviceAccount.create is false and serviceAccount.name is empty",
            id="rbac-for-the-default-account",
        ),
        pytest.param(
            {"adminToken": TOKEN, "rbac": {"clusterWide": True, "namespaces": ["a"]}},
            "rbac.clusterWide grants every namespace already",
            id="cluster-wide-and-namespaces",
        ),
        pytest.param(
            {"adminToken": TOKEN, "secretKeys": f"{SEALING_KEY},too-short"},
            "secretKeys: key 2 has 9 characters; each key needs at least 32",
            id="short-sealing-key",
        ),
        pytest.param(
            {"adminToken": TOKEN, "config": {"extra": {"CONTROLPLANE_SECRET_KEYS": "x"}}},
            "config.extra.CONTROLPLANE_SECRET_KEYS would put a secret in the ConfigMap",
            id="sealing-key-in-configmap",
        ),
        pytest.param(
            {"adminToken": TOKEN, "config": {"webhooks": {"allowedCidrs": "$(curl x)"}}},
            "at '/config/webhooks/allowedCidrs'",
            id="not-cidrs",
        ),
    ],
)
def test_invalid_values_are_refused_with_a_clear_message(
    helm: Helm, values_dir: Path, values: dict[str, Any], message: str
) -> None:
    assert message in refusal(helm, values_dir, values)


# --- against the API server -------------------------------------------------------------


def kubectl(
    kubeconfig: str, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    if not KUBECTL.is_file():
        pytest.fail(f"{KUBECTL} is missing: run hack/cluster/build.sh")
    done = subprocess.run(
        [str(KUBECTL), "--kubeconfig", kubeconfig, *args],
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    if check and done.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def create_namespace(kube_api: KubeApi, labels: dict[str, str] | None = None) -> str:
    name = f"cp-test-{uuid.uuid4().hex[:8]}"
    kube_api.request(
        "POST",
        NAMESPACE.path(),
        action="create namespace",
        body={
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        },
    )
    wait_for("the default ServiceAccount", lambda: kube_api.get(SERVICE_ACCOUNT, name, "default"))
    return name


@pytest.fixture
def other_namespaces(kube_api: KubeApi) -> Iterator[list[str]]:
    """Two more namespaces: one the chart may be told to manage, one it must not touch."""
    names = [create_namespace(kube_api), create_namespace(kube_api)]
    yield names
    for name in names:
        kube_api.delete(NAMESPACE, None, name)


@pytest.fixture
def restricted_namespace(kube_api: KubeApi) -> Iterator[str]:
    """A release namespace that enforces the "restricted" Pod Security Standard."""
    name = create_namespace(
        kube_api,
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
        },
    )
    yield name
    kube_api.delete(NAMESPACE, None, name)


Apply = Callable[..., list[Manifest]]


@pytest.fixture
def apply_chart(
    render: Render, kubeconfig: str, tmp_path: Path
) -> Iterator[Callable[[dict[str, Any], str], list[Manifest]]]:
    """Render the chart for a namespace and apply it with server-side apply (after a
    server-side dry run). Cluster-scoped objects it made are deleted afterwards; the
    namespaced ones go with their namespace."""
    cluster_scoped: list[Manifest] = []

    def apply(values: dict[str, Any], namespace: str) -> list[Manifest]:
        manifests = render(values, namespace=namespace)
        path = tmp_path / f"rendered-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump_all(manifests))
        cluster_scoped.extend(
            m for m in manifests if m["kind"] in {"ClusterRole", "ClusterRoleBinding"}
        )
        for dry_run in (["--dry-run=server"], []):
            done = kubectl(
                kubeconfig,
                "apply",
                "--server-side",
                "--field-manager=helm-chart-test",
                *dry_run,
                "-f",
                str(path),
            )
            assert "violate PodSecurity" not in done.stderr, done.stderr
        return manifests

    yield apply
    for manifest in reversed(cluster_scoped):
        kubectl(
            kubeconfig,
            "delete",
            manifest["kind"].lower(),
            manifest["metadata"]["name"],
            "--ignore-not-found",
            "--wait=false",
        )


def can_i(kubeconfig: str, namespace: str, verb: str, resource: str, where: str | None) -> bool:
    """May the control plane's ServiceAccount do ``verb`` on ``resource``, asked of the API
    server with a SubjectAccessReview (``where`` None: in every namespace, or a
    cluster-scoped resource). ``resource`` is ``plural[.group][/subresource]``: the group
    is named, not discovered, so a rule for a CRD the cluster does not serve (llm-d.ai's
    rewrites on the test cluster) is checked all the same."""
    resource, _, subresource = resource.partition("/")
    plural, _, group = resource.partition(".")
    attributes: dict[str, str] = {"verb": verb, "resource": plural, "group": group}
    if subresource:
        attributes["subresource"] = subresource
    if where is not None:
        attributes["namespace"] = where
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{namespace}:{FULLNAME}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    done = kubectl(kubeconfig, "create", "-o", "json", "-f", "-", input=json.dumps(review))
    return bool(json.loads(done.stdout)["status"].get("allowed", False))


@contextmanager
def driver_as_service_account(
    kubeconfig: str, namespace: str, tmp_path: Path
) -> Iterator[KubeDriver]:
    """The Kubernetes driver with the control plane's own credentials: a short-lived
    token of the chart's ServiceAccount, on the test cluster's server and CA."""
    token = kubectl(
        kubeconfig, "-n", namespace, "create", "token", FULLNAME, "--duration=10m"
    ).stdout.strip()
    admin = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    path = tmp_path / f"kubeconfig-{namespace}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "controlplane", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "controlplane",
                        "context": {"cluster": cluster["name"], "user": "controlplane"},
                    }
                ],
                "current-context": "controlplane",
            }
        )
    )
    api = KubeApi.from_kubeconfig(str(path))
    try:
        yield KubeDriver(api)
    finally:
        api.close()


def model_version(namespace: str, version: str, track: Track) -> Workload:
    return Workload(
        model="chat",
        namespace=namespace,
        version=version,
        image="vllm/vllm-openai:v0.11.0",
        port=8000,
        gpus=0,
        gpu_resource="nvidia.com/gpu",
        artifact_uri=f"s3://models/chat/{version}",
        replicas=1,
        track=track,
    )


DRIVER_WRITES = [
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("update", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("get", "deployments.apps"),
    ("create", "services"),
    ("patch", "services"),
    ("delete", "services"),
    ("create", "httproutes.gateway.networking.k8s.io"),
    ("patch", "httproutes.gateway.networking.k8s.io"),
    ("delete", "httproutes.gateway.networking.k8s.io"),
]
DRIVER_READS = [
    ("get", "pods"),
    ("list", "pods"),
    ("watch", "pods"),
    ("list", "events"),
    ("watch", "events"),
]
NEVER = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("get", "configmaps"),
    ("list", "configmaps"),
    ("create", "pods/exec"),
    ("create", "pods"),
    ("delete", "pods"),
    ("patch", "deployments.apps/scale"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "serviceaccounts/token"),
    ("create", "events"),
    ("delete", "namespaces"),
]


def assert_matrix(
    kubeconfig: str,
    namespace: str,
    expected: dict[tuple[str, str, str | None], bool],
) -> None:
    """Ask the API server each question; report every wrong answer at once."""
    wrong = {
        f"{verb} {resource} in {where or 'all namespaces'}": want
        for (verb, resource, where), want in expected.items()
        if can_i(kubeconfig, namespace, verb, resource, where) != want
    }
    assert not wrong, f"the ServiceAccount's permissions differ (expected): {wrong}"


@pytest.mark.cluster
@pytest.mark.parametrize("name", [n for n in VALUE_SETS if n != "service-monitor"])
def test_every_value_set_passes_a_server_side_dry_run(
    render: Render, kubeconfig: str, restricted_namespace: str, tmp_path: Path, name: str
) -> None:
    # the ServiceMonitor CRD is not on the test cluster: that set is checked by rendering
    values = json.loads(json.dumps(VALUE_SETS[name]))
    if "namespaces" in values.get("rbac", {}):
        values["rbac"]["namespaces"] = [restricted_namespace]
    manifests = render(values, namespace=restricted_namespace)
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    done = kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        str(path),
    )
    assert done.stdout.count("serverside-applied (server dry run)") == len(manifests)
    assert "violate PodSecurity" not in done.stderr, done.stderr


@pytest.mark.cluster
def test_namespaced_install_grants_the_driver_exactly_its_verbs(
    apply_chart: Apply,
    kubeconfig: str,
    restricted_namespace: str,
    other_namespaces: list[str],
) -> None:
    namespace = restricted_namespace
    other = other_namespaces[0]
    apply_chart(VALUE_SETS["defaults"], namespace)

    # The server's pods pass the "restricted" Pod Security Standard and become ready.
    kubectl(
        kubeconfig, "-n", namespace, "rollout", "status", f"deployment/{FULLNAME}", "--timeout=90s"
    )

    expected: dict[tuple[str, str, str | None], bool] = {}
    for verb, resource in DRIVER_WRITES + DRIVER_READS:
        expected[(verb, resource, namespace)] = True
        # elsewhere only what readNodes grants everywhere: listing pods (to count GPUs)
        expected[(verb, resource, other)] = (verb, resource) == ("list", "pods")
    for verb, resource in NEVER:
        expected[(verb, resource, namespace)] = False
    expected[("create", "inferencepools.inference.networking.k8s.io", namespace)] = False
    # adapters are off by default: no rewrite, no pod status
    for group in ("llm-d.ai", "inference.networking.x-k8s.io"):
        expected[("patch", f"inferencemodelrewrites.{group}", namespace)] = False
    expected[("patch", "pods/status", namespace)] = False
    # readNodes (default): free-GPU accounting, and nothing more cluster-wide
    expected[("list", "nodes", None)] = True
    expected[("get", "nodes", None)] = True
    expected[("list", "pods", None)] = True
    expected[("watch", "pods", None)] = False
    expected[("patch", "nodes", None)] = False
    expected[("create", "deployments.apps", None)] = False
    expected[("list", "secrets", None)] = False
    assert_matrix(kubeconfig, namespace, expected)


@pytest.mark.cluster
def test_adapter_rbac_adds_the_rewrites_and_the_pool_reads_and_the_gate_only_if_asked(
    apply_chart: Apply, kubeconfig: str, restricted_namespace: str
) -> None:
    namespace = restricted_namespace
    apply_chart({"adminToken": TOKEN, "rbac": {"adapters": True}}, namespace)
    expected: dict[tuple[str, str, str | None], bool] = {}
    for group in ("llm-d.ai", "inference.networking.x-k8s.io"):
        for verb in ("get", "create", "patch", "delete"):
            expected[(verb, f"inferencemodelrewrites.{group}", namespace)] = True
        expected[("patch", f"inferencemodelrewrites.{group}", None)] = False
    expected[("get", "inferencepools.inference.networking.k8s.io", namespace)] = True
    expected[("create", "inferencepools.inference.networking.k8s.io", namespace)] = False
    expected[("patch", "pods/status", namespace)] = False
    expected[("create", "pods", namespace)] = False
    expected[("delete", "pods", namespace)] = False
    assert_matrix(kubeconfig, namespace, expected)

    apply_chart(
        {"adminToken": TOKEN, "rbac": {"adapters": True, "adapterReadinessGate": True}},
        namespace,
    )
    assert_matrix(
        kubeconfig,
        namespace,
        {
            ("patch", "pods/status", namespace): True,
            ("update", "pods/status", namespace): False,
            ("patch", "pods", namespace): False,
            ("patch", "pods/status", None): False,
        },
    )


@pytest.mark.cluster
def test_listed_namespaces_only_and_without_gateway_api_or_nodes(
    apply_chart: Apply,
    kubeconfig: str,
    restricted_namespace: str,
    other_namespaces: list[str],
    tmp_path: Path,
) -> None:
    namespace = restricted_namespace
    managed, unmanaged = other_namespaces
    values = {
        "adminToken": TOKEN,
        "rbac": {"namespaces": [namespace, managed], "gatewayApi": False, "readNodes": False},
    }
    apply_chart(values, namespace)

    expected: dict[tuple[str, str, str | None], bool] = {}
    for where in (namespace, managed):
        expected[("patch", "deployments.apps", where)] = True
        expected[("delete", "services", where)] = True
        expected[("watch", "events", where)] = True
        expected[("patch", "httproutes.gateway.networking.k8s.io", where)] = False
        expected[("get", "secrets", where)] = False
        expected[("get", "configmaps", where)] = False
        expected[("create", "pods/exec", where)] = False
    expected[("patch", "deployments.apps", unmanaged)] = False
    expected[("list", "pods", unmanaged)] = False
    expected[("list", "nodes", None)] = False
    expected[("list", "pods", None)] = False
    assert_matrix(kubeconfig, namespace, expected)

    # without readNodes the driver still works, it just cannot count free GPUs
    with driver_as_service_account(kubeconfig, namespace, tmp_path) as driver:
        assert driver.free_gpus("nvidia.com/gpu") is None
        driver.apply_version(model_version(managed, "v1", Track.STABLE))
        with pytest.raises(PermanentKubeError, match="forbidden"):
            driver.apply_version(model_version(unmanaged, "v1", Track.STABLE))


@pytest.mark.cluster
def test_the_driver_does_its_whole_job_with_only_the_charts_permissions(
    apply_chart: Apply,
    kubeconfig: str,
    namespace: str,
    other_namespaces: list[str],
    tmp_path: Path,
) -> None:
    # the model's pods are the driver's, not the chart's: a namespace without Pod Security
    apply_chart({"adminToken": TOKEN}, namespace)
    with driver_as_service_account(kubeconfig, namespace, tmp_path) as driver:
        driver.apply_version(model_version(namespace, "v1", Track.STABLE))
        driver.apply_version(model_version(namespace, "v2", Track.CANARY))
        wait_for(
            "chat-v1 and chat-v2 to be ready",
            lambda: all(
                driver.observe_version(namespace, "chat", v).is_ready for v in ("v1", "v2")
            ),
        )
        driver.set_weight(
            model="chat",
            namespace=namespace,
            port=8000,
            gateway="infra/llm-gw",
            stable_version="v1",
            canary_version="v2",
            weight=10,
        )
        reading = driver.read_weight(
            routing_mode=RoutingMode.GATEWAY_API,
            model="chat",
            namespace=namespace,
            stable_version="v1",
            canary_version="v2",
        )
        assert (reading.stable, reading.canary) == (90, 10)
        free = driver.free_gpus("nvidia.com/gpu")
        assert free is not None, "readNodes lets the driver count free GPUs"
        assert sum(free.values()) > 0

        with pytest.raises(PermanentKubeError, match="forbidden"):
            driver.apply_version(model_version(other_namespaces[0], "v1", Track.STABLE))
        assert driver.delete_version(namespace, "chat", "v2")
        assert not driver.observe_version(namespace, "chat", "v2").exists


@pytest.mark.cluster
def test_cluster_wide_install_reaches_every_namespace_but_still_no_secrets(
    apply_chart: Apply,
    kubeconfig: str,
    restricted_namespace: str,
    other_namespaces: list[str],
) -> None:
    namespace = restricted_namespace
    other = other_namespaces[0]
    manifests = apply_chart(
        {"adminToken": TOKEN, "rbac": {"clusterWide": True, "inferencePools": True}}, namespace
    )
    assert {m["metadata"]["name"] for m in of_kind(manifests, "ClusterRole")} == {
        f"{FULLNAME}-{namespace}",
        f"{FULLNAME}-{namespace}-nodes",
    }

    expected: dict[tuple[str, str, str | None], bool] = {}
    for where in (namespace, other, None):
        for verb, resource in DRIVER_WRITES + DRIVER_READS:
            expected[(verb, resource, where)] = True
        expected[("create", "inferencepools.inference.networking.k8s.io", where)] = True
        for verb, resource in NEVER:
            expected[(verb, resource, where)] = False
    expected[("list", "nodes", None)] = True
    assert_matrix(kubeconfig, namespace, expected)


@pytest.mark.cluster
def test_helm_installs_upgrades_and_uninstalls_with_the_migration_hook(
    helm: Helm,
    values_dir: Path,
    kubeconfig: str,
    kube_api: KubeApi,
    restricted_namespace: str,
) -> None:
    namespace = restricted_namespace
    values = values_file(values_dir, VALUE_SETS["postgres-chart-secret"])
    common = ["--namespace", namespace, "--kubeconfig", kubeconfig]
    cluster_role = f"{FULLNAME}-{namespace}-nodes"
    try:
        helm(
            "install",
            RELEASE,
            str(CHART),
            *common,
            "--values",
            str(values),
            "--wait",
            "--timeout",
            "2m",
        )
        helm(
            "upgrade",
            RELEASE,
            str(CHART),
            *common,
            "--values",
            str(values),
            "--set",
            "replicas=3",
            "--wait",
            "--timeout",
            "2m",
        )

        status = json.loads(helm("status", RELEASE, *common, "--output", "json").stdout)
        assert status["info"]["status"] == "deployed"
        assert status["version"] == 2
        hooks = {(h["kind"], h["name"]): h["last_run"]["phase"] for h in status["hooks"]}
        assert hooks == {
            ("Secret", f"{FULLNAME}-migrate"): "Succeeded",
            ("Job", f"{FULLNAME}-migrate"): "Succeeded",
        }
        # hook-succeeded: neither the Job nor the Secret with the URL is left behind
        assert kubectl(kubeconfig, "-n", namespace, "get", "jobs", "-o", "name").stdout == ""
        secrets = kubectl(kubeconfig, "-n", namespace, "get", "secrets", "-o", "name").stdout
        assert f"secret/{FULLNAME}\n" in secrets
        assert f"secret/{FULLNAME}-migrate" not in secrets
        deployment = json.loads(
            kubectl(kubeconfig, "-n", namespace, "get", "deployment", FULLNAME, "-o", "json").stdout
        )
        assert deployment["status"]["readyReplicas"] == 3
        assert "--no-migrate" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert kubectl(kubeconfig, "get", "clusterrole", cluster_role, check=False).returncode == 0

        helm("uninstall", RELEASE, *common, "--wait", "--timeout", "2m")
        gone = kubectl(kubeconfig, "get", "clusterrole", cluster_role, check=False)
        assert gone.returncode != 0
        assert "NotFound" in gone.stderr
    finally:
        for kind in ("clusterrolebinding", "clusterrole"):
            kubectl(kubeconfig, "delete", kind, cluster_role, "--ignore-not-found", "--wait=false")
