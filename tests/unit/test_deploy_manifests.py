"""deploy/: the Compose file against the Compose schema, the Kubernetes manifests against the
Kubernetes 1.28 schemas, both offline, and what they promise the code.

- Schemas: deploy/docker-compose.yml against compose_spec.json of docker-compose 1.29.2
  (scripts/fetch-schemas.sh puts it in build/schemas at install time); deploy/k8s rendered (its
  resources, plus the ConfigMap and Secrets its generators make) against kubernetes-validate's
  1.28 schemas, strict (an unknown field is an error), and, where kubectl is installed, the output
  of `kubectl kustomize` too. Broken documents must be rejected, so these checks can fail.
- Environment: every variable the manifests set for the project's image is one the code reads
  (found in bot/, actions/, the shell scripts, deploy/entrypoint.sh and endpoints.replicas.yml),
  and every one the code requires of a role is set.
- Probes at /status, resources requested from the measured memory, no secret value inline.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_SCHEMA = ROOT / "build" / "schemas" / "compose_spec.json"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
KUBERNETES = "1.28"
CLUSTER_WIDE = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass"}
# Memory measured on the 2-core reference machine (README, `make bench`): resident set sizes.
RASA_RSS = 1.1 * 1000**3
ACTIONS_RSS = 255 * 1000**2
BASH_OWN = {"PWD", "PIPESTATUS", "BASH_SOURCE", "LINENO", "RANDOM"}
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")


# -- loading -------------------------------------------------------------------

def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def compose_schema() -> dict[str, Any]:
    if not COMPOSE_SCHEMA.exists():
        pytest.fail("build/schemas/compose_spec.json is missing: run scripts/fetch-schemas.sh (make test-deps)")
    return json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))


def compose_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft201909Validator(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value for key, value in pairs}


def kustomization(directory: Path = K8S) -> dict[str, Any]:
    return yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))


def _generated(kind: str, generator: dict[str, Any], directory: Path) -> dict[str, Any]:
    data: dict[str, str] = {}
    for name in generator.get("envs", []):
        path = directory / name
        data.update(env_file(path if path.exists() else path.with_name(path.name + ".example")))
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": generator["name"]},
            "stringData" if kind == "Secret" else "data": data}


def rendered(directory: Path = K8S) -> list[dict[str, Any]]:
    """The kustomization's objects: its resources, plus what its generators make (Secrets from
    secrets/*.env, or the committed *.env.example beside them), in its namespace."""
    spec = kustomization(directory)
    documents = [doc for name in spec["resources"]
                 for doc in yaml.safe_load_all((directory / name).read_text(encoding="utf-8")) if doc]
    documents += [_generated("ConfigMap", g, directory) for g in spec.get("configMapGenerator", [])]
    documents += [_generated("Secret", g, directory) for g in spec.get("secretGenerator", [])]
    for doc in documents:
        if doc["kind"] not in CLUSTER_WIDE:
            doc["metadata"]["namespace"] = spec["namespace"]
    return documents


def kubernetes_errors(document: dict[str, Any]) -> str:
    """'' when the document matches the 1.28 schema of its kind (strict), else the reason; a kind
    without a schema is an error too."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'.'.join(map(str, exc.path))}: {exc.message}"
    except (kubernetes_validate.utils.SchemaNotFoundError, kubernetes_validate.utils.VersionNotSupportedError) as exc:
        return exc.message
    return ""


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered() if doc["kind"] == kind]


def deployment() -> dict[str, Any]:
    (found,) = by_kind("Deployment")
    return found


def pod_containers(init: bool = True) -> dict[str, dict[str, Any]]:
    spec = deployment()["spec"]["template"]["spec"]
    containers = spec["containers"] + (spec.get("initContainers", []) if init else [])
    return {c["name"]: c for c in containers}


def our_services() -> dict[str, dict[str, Any]]:
    """The Compose services that run the project's image."""
    return {name: s for name, s in compose()["services"].items() if "KEPU_IMAGE" in str(s.get("image"))}


# -- what the code reads and requires -------------------------------------------

def secret_vars() -> list[str]:
    """SECRET_VARS of deploy/entrypoint.sh: the variables that may come as NAME_FILE."""
    match = re.search(r"SECRET_VARS=\(([^)]*)\)", ENTRYPOINT.read_text(encoding="utf-8"))
    assert match, "SECRET_VARS not found in deploy/entrypoint.sh"
    return match.group(1).split()


def _python_reads() -> set[str]:
    names: set[str] = set()
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "actions").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        if "environ" not in text and "getenv" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
                names.add(node.value)
    return names


def _shell_reads() -> set[str]:
    """$NAME and ${NAME...} in the shell scripts, plus what deploy/entrypoint.sh reads indirectly
    (${!name}): SECRET_VARS and the arguments of its `require` lines."""
    names = set(secret_vars())
    for path in [*(ROOT / "scripts").glob("*.sh"), ENTRYPOINT]:
        text = path.read_text(encoding="utf-8")
        assigned = set(re.findall(r"(?<![\w$\"{])([A-Z][A-Z0-9_]+)=", text))  # the script's own variables
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text)) - assigned - BASH_OWN
        names |= {name for line in text.splitlines() if line.strip().startswith("require ")
                  for name in line.split()[1:]}
    return names


def endpoint_vars() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+)\}", (ROOT / "endpoints.replicas.yml").read_text(encoding="utf-8")))


def read_by_code() -> set[str]:
    """Every environment variable the project's code reads (a NAME_FILE stands for NAME)."""
    names = _python_reads() | _shell_reads() | endpoint_vars()
    return names | {f"{name}_FILE" for name in secret_vars() if name in names}


def entrypoint_requires(function: str) -> set[str]:
    """The variables `require` demands in one function of deploy/entrypoint.sh."""
    body = re.search(rf"^{function}\(\) \{{\n(.*?)^\}}", ENTRYPOINT.read_text(encoding="utf-8"), re.M | re.S)
    assert body, function
    return {name for line in body.group(1).splitlines() if line.strip().startswith("require ")
            for name in line.split()[1:]}


def wechat_secrets() -> set[str]:
    tree = ast.parse((ROOT / "bot" / "channels" / "wechat" / "settings.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ENV" for t in node.targets):
            return set(ast.literal_eval(node.value).values())
    raise AssertionError("ENV not found in bot/channels/wechat/settings.py")


def required(role: str) -> set[str]:
    """What a role needs set: the entry point's own checks, endpoints.replicas.yml, the WeChat
    secrets and, with several replicas, the shared nonce store and the list of live servers."""
    if role == "rasa":
        return (entrypoint_requires("run_rasa") | endpoint_vars() | wechat_secrets()
                | {"WECHAT_NONCE_STORE", "WECHAT_STATE", "WECHAT_REDIS_URL", "KEPU_LIVE_URLS"})
    return entrypoint_requires({"actions": "run_actions", "prepare": "prepare"}[role])


def is_set(name: str, names: set[str]) -> bool:
    return name in names or f"{name}_FILE" in names


def compose_environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def k8s_environment(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> env entry; envFrom ConfigMaps count with their keys."""
    env = {item["name"]: item for item in container.get("env", [])}
    maps = {doc["metadata"]["name"]: doc["data"] for doc in by_kind("ConfigMap")}
    for source in container.get("envFrom", []):
        env.update({key: {"name": key, "configMap": True} for key in maps[source["configMapRef"]["name"]]})
    return env


def role_of(args: list[str]) -> str:
    return args[0] if args else "rasa"


def memory_bytes(quantity: str) -> float:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity))
    assert match, quantity
    return float(match.group(1)) * units.get(match.group(2), 1)


# -- Compose ---------------------------------------------------------------------

def test_the_compose_file_matches_the_compose_schema():
    assert compose_errors(compose()) == []


def test_a_broken_compose_file_is_rejected():
    broken = compose()
    broken["services"]["rasa-1"]["depends_on"]["prepare"]["condition"] = "when_it_feels_like_it"
    broken["services"]["nginx"]["healthchek"] = {"test": ["CMD", "true"]}
    errors = compose_errors(broken)
    assert errors and any("rasa-1" in e for e in errors) and any("healthchek" in e for e in errors), errors


def test_compose_runs_two_replicas_behind_nginx_with_trial_services_in_a_profile():
    services = compose()["services"]
    assert {"rasa-1", "rasa-2", "actions-1", "actions-2", "nginx", "prepare"} <= set(services)
    assert services["nginx"]["ports"] == ["${KEPU_BIND_ADDRESS:-0.0.0.0}:${KEPU_HTTP_PORT:-5005}:5005"]
    assert [n for n, s in services.items() if "ports" in s] == ["nginx"]  # nothing else is published
    assert services["postgres"]["profiles"] == ["local-trial"] and services["redis"]["profiles"] == ["local-trial"]
    for n in ("1", "2"):
        env = compose_environment(services[f"rasa-{n}"])
        assert env["ACTION_ENDPOINT_URL"] == f"http://actions-{n}-private:5055/webhook"
        assert compose_environment(services[f"actions-{n}"])["ACTIONS_HOST"] == f"actions-{n}-private"
        assert f"pair-{n}" in services[f"actions-{n}"]["networks"]
    assert all(compose()["networks"][f"pair-{n}"]["internal"] for n in ("1", "2"))


# -- Kubernetes -------------------------------------------------------------------

@pytest.mark.parametrize("document", rendered(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_kubernetes_object_matches_the_1_28_schema(document):
    assert kubernetes_errors(document) == ""


def test_a_broken_manifest_is_rejected():
    broken = deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/status"}}
    assert "readinesProbe" in kubernetes_errors(broken)
    broken = deployment()
    broken["spec"]["replicas"] = "two"
    assert "replicas" in kubernetes_errors(broken)
    assert "Couldn't find schema" in kubernetes_errors({"apiVersion": "v1", "kind": "Deplyment", "metadata": {}})


def test_the_kustomization_lists_every_manifest_and_each_exists():
    spec = kustomization()
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(spec["resources"]) == manifests
    for generator in spec["secretGenerator"] + spec["configMapGenerator"]:
        for name in generator["envs"]:
            assert (K8S / name).exists() or (K8S / f"{name}.example").exists(), name


@pytest.fixture(scope="module")
def kustomized(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a copy whose secrets/*.env are the committed examples."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed (the schema checks above still ran on the same objects)")
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    def filled_in(folder: str, names: list[str]) -> list[str]:  # an operator's own secrets/*.env
        return [n for n in names if Path(folder).name == "secrets" and n.endswith(".env")]

    shutil.copytree(K8S, copy, ignore=filled_in)
    for example in (copy / "secrets").glob("*.env.example"):
        shutil.copy(example, example.with_name(example.name.removesuffix(".example")))
    done = subprocess.run([kubectl, "kustomize", str(copy)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_kubectl_kustomize_output_matches_the_schemas_and_references_its_generated_objects(kustomized):
    assert {d["kind"] for d in kustomized} == {d["kind"] for d in rendered()}
    assert [(d["kind"], d["metadata"]["name"]) for d in kustomized if kubernetes_errors(d)] == []
    names = {d["metadata"]["name"] for d in kustomized if d["kind"] in ("Secret", "ConfigMap")}
    (pod,) = [d["spec"]["template"]["spec"] for d in kustomized if d["kind"] == "Deployment"]
    for container in pod["containers"] + pod["initContainers"]:
        assert container["image"] != "kepu-assistant"  # the images: entry applied
        refs = [e["valueFrom"].get("secretKeyRef") or e["valueFrom"].get("configMapKeyRef")
                for e in container.get("env", []) if "valueFrom" in e]
        refs += [s["configMapRef"] for s in container.get("envFrom", [])]
        assert refs and all(ref["name"] in names for ref in refs), container["name"]


def test_every_secret_key_the_pods_use_is_generated():
    keys = {(d["metadata"]["name"], k) for d in by_kind("Secret") for k in d["stringData"]}
    refs = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for c in pod_containers().values() for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs and refs <= keys, refs - keys


def test_postgres_and_redis_are_external_services():
    external = {d["metadata"]["name"]: d["spec"] for d in by_kind("Service") if d["spec"]["type"] == "ExternalName"}
    assert set(external) == {"kepu-postgres", "kepu-redis"}
    assert env_file(K8S / "config.env")["REDIS_HOST"] == "kepu-redis"
    assert not [d for d in by_kind("Deployment") + by_kind("StatefulSet") if "postgres" in str(d).lower()]


def test_the_replicas_have_a_budget_an_autoscaler_and_a_network_policy():
    (pdb,) = by_kind("PodDisruptionBudget")
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    labels = deployment()["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == labels and pdb["spec"]["minAvailable"] >= 1
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment()["metadata"]["name"] and hpa["spec"]["minReplicas"] >= 2
    policies = {d["metadata"]["name"]: d["spec"] for d in by_kind("NetworkPolicy")}
    assert policies["kepu-default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ingress_ports = [p["port"] for rule in policies["kepu-rasa"]["ingress"] for p in rule["ports"]]
    assert ingress_ports == [5005]  # the action server (5055) is never reachable from outside the pod


def test_the_wechat_route_gives_up_within_wechats_five_seconds():
    ingresses = {d["metadata"]["name"]: d for d in by_kind("Ingress")}
    notes = ingresses["kepu-wechat"]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert all(int(notes[prefix + k]) <= 5 for k in ("proxy-read-timeout", "proxy-send-timeout", "proxy-connect-timeout"))
    assert notes[prefix + "upstream-hash-by"] == "$arg_openid" and notes[prefix + "proxy-next-upstream"] == "error"
    paths = {p["path"] for i in ingresses.values() for r in i["spec"]["rules"] for p in r["http"]["paths"]}
    assert not [p for p in paths if p.startswith(("/model", "/conversations", "/domain"))]


# -- environment ---------------------------------------------------------------------

def test_every_variable_compose_sets_for_the_image_is_read_by_the_code():
    known = read_by_code()
    unknown = {f"{name}: {var}" for name, service in our_services().items()
               for var in compose_environment(service) if var not in known}
    assert unknown == set()


def test_every_variable_the_pods_get_is_read_by_the_code():
    known = read_by_code()
    unknown = {f"{name}: {var}" for name, c in pod_containers().items() for var in k8s_environment(c) if var not in known}
    assert unknown == set()


def test_compose_sets_what_each_role_requires():
    for name, service in our_services().items():
        role = role_of(service.get("command") or [])
        if role in ("rasa", "actions", "prepare"):
            missing = {v for v in required(role) if not is_set(v, set(compose_environment(service)))}
            assert missing == set(), name
    staff = compose_environment(compose()["services"]["staff"])
    assert {v for v in required("rasa") - {"ACTION_ENDPOINT_URL"} if not is_set(v, set(staff))} == set()


def test_the_pods_set_what_each_role_requires():
    for name, container in pod_containers().items():
        role = role_of(container.get("args", []))
        if role in ("rasa", "actions", "prepare"):
            assert {v for v in required(role) if v not in k8s_environment(container)} == set(), name
    assert "KEPU_API_TOKEN" in k8s_environment(pod_containers()["model-follow"])  # its PUT /model needs the token


def test_several_replicas_share_the_nonce_store_and_each_hot_swaps_its_own_server():
    config = env_file(K8S / "config.env")
    assert config["WECHAT_NONCE_STORE"] == "redis" and config["KEPU_LIVE_URLS"] == "http://127.0.0.1:5005"
    assert config["ACTION_ENDPOINT_URL"] == "http://127.0.0.1:5055/webhook"  # the sidecar
    env = compose_environment(compose()["services"]["rasa-1"])
    assert env["WECHAT_NONCE_STORE"] == "redis"
    assert env["KEPU_LIVE_URLS"].split() == ["http://rasa-1:5005", "http://rasa-2:5005"]


def test_env_example_holds_the_compose_settings_and_no_secret():
    example = env_file(DEPLOY / "env.example")
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert set(example) - {"COMPOSE_PROJECT_NAME"} <= interpolated
    assert set(re.findall(r"\$\{([A-Z0-9_]+):\?", text)) <= set(example)  # every mandatory one is explained
    assert not set(example) & set(secret_vars())


# -- probes and resources ----------------------------------------------------------

def test_the_rasa_probes_ask_status_on_5005_and_the_sidecar_checks_itself_on_loopback():
    rasa = pod_containers()["rasa"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert rasa[probe]["httpGet"] == {"path": "/status", "port": 5005}, probe
    actions = pod_containers()["actions"]
    for probe in ("startupProbe", "livenessProbe"):
        assert "http://127.0.0.1:5055/health" in actions[probe]["exec"]["command"], probe
    https = [p for c in pod_containers().values() for k, p in c.items() if k.endswith("Probe") and "httpGet" in p]
    assert all(p["httpGet"]["path"] == "/status" for p in https)
    for name in ("rasa-1", "rasa-2"):
        assert "http://127.0.0.1:5005/status" in compose()["services"][name]["healthcheck"]["test"]


def test_every_container_requests_and_limits_cpu_and_memory():
    for name, container in pod_containers().items():
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), (name, kind)
        assert memory_bytes(resources["limits"]["memory"]) >= memory_bytes(resources["requests"]["memory"]), name


def test_memory_requests_cover_the_measured_resident_memory():
    containers = pod_containers()
    assert memory_bytes(containers["rasa"]["resources"]["requests"]["memory"]) >= RASA_RSS
    assert memory_bytes(containers["actions"]["resources"]["requests"]["memory"]) >= ACTIONS_RSS
    services = compose()["services"]
    for name, rss in (("rasa-1", RASA_RSS), ("actions-1", ACTIONS_RSS)):
        resources = services[name]["deploy"]["resources"]
        assert memory_bytes(resources["reservations"]["memory"]) >= rss, name
        assert memory_bytes(resources["limits"]["memory"]) >= memory_bytes(resources["reservations"]["memory"])


# -- secrets ------------------------------------------------------------------------

CREDENTIAL_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def _manifest_texts() -> Iterator[tuple[Path, str]]:
    for path in [DEPLOY / "docker-compose.yml", DEPLOY / "env.example", DEPLOY / "nginx.conf",
                 *K8S.glob("*.yaml"), *K8S.glob("*.env"), *K8S.glob("secrets/*.example")]:
        yield path, path.read_text(encoding="utf-8")


def test_no_secret_value_is_written_in_the_manifests():
    secrets = set(secret_vars())
    for name, container in pod_containers().items():
        for var, entry in k8s_environment(container).items():
            if var in secrets:
                assert "secretKeyRef" in entry.get("valueFrom", {}), (name, var)
    for name, service in our_services().items():
        assert not set(compose_environment(service)) & secrets, name  # only NAME_FILE
    assert all("file" in s for s in compose()["secrets"].values())
    for example in (K8S / "secrets").glob("*.env.example"):
        assert set(env_file(example).values()) == {""}, example.name
    assert not set(env_file(K8S / "config.env")) & secrets
    assert [str(p) for p, text in _manifest_texts() if CREDENTIAL_URL.search(text)] == []
    assert not [d for name in kustomization()["resources"]
                for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d and d["kind"] == "Secret"]


def test_the_filled_in_secret_files_stay_out_of_git():
    ignored = subprocess.run(["git", "check-ignore", "deploy/secrets/kepu_api_token", "deploy/k8s/secrets/api.env",
                              "deploy/.env"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert ignored.stdout.split() == ["deploy/secrets/kepu_api_token", "deploy/k8s/secrets/api.env", "deploy/.env"]
    examples = subprocess.run(["git", "check-ignore", "deploy/k8s/secrets/api.env.example"], cwd=ROOT,
                              capture_output=True, text=True, check=False)
    assert examples.stdout == ""


def test_the_secret_check_catches_an_inline_password():
    assert CREDENTIAL_URL.search("TRACKER_URL=postgresql://kepu:hunter2@db:5432/kepu")
    assert not CREDENTIAL_URL.search("http://rasa-1:5005/status")


def test_the_environment_checks_catch_a_misspelt_or_missing_variable():
    known = read_by_code()
    assert "TRACKER_URI" not in known and "KEPU_DB_URI_FILE" not in known and "PY" not in known
    env = set(compose_environment(compose()["services"]["rasa-1"])) - {"TRACKER_URL_FILE"}
    assert "TRACKER_URL" in {v for v in required("rasa") if not is_set(v, env)}
