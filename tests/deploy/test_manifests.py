"""The Kubernetes manifests, checked against the code they deploy.

Every service in `services/` gets a Deployment on the port its settings name, probed on /healthz
and /readyz, limited, unprivileged, and given its own Secret only; the replicated ones keep two
pods and a disruption budget. PyYAML is not among the workspace's dependencies, so the manifests
are read by `load_yaml` below: the block-style subset of YAML they are written in, refusing
anything else rather than guessing.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
NATS = ROOT / "deploy" / "nats"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
SERVICES = tuple(sorted(path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml")))
BUS_CLIENTS = {"gateway": "portal"}
"""Services that are clients of the bus (issue 8): the NATS user each holds; no database."""
HARDWARE = "card-gateway"
"""The service that runs where the card readers are: one pod, on a reader node."""
NATS_URL = "tls://nats.nats:4222"
CA_FILE = "/etc/nats-ca/ca.crt"
CONFIG = "singlewindow-config"


# A strict reader of the YAML subset the manifests use


class YamlSubsetError(ValueError):
    """The text uses YAML this reader does not handle: write it in the plainer form."""


@dataclass
class Line:
    number: int
    indent: int
    text: str


_KEY = re.compile(
    r"""^(?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s"'#\-?:][^:#]*?|-[^\s:][^:#]*?)\s*:(?:\s+|$)"""
)
_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")
_AMBIGUOUS = {"yes", "no", "on", "off", "y", "n"}


def load_yaml(text: str) -> list[Any]:
    """The documents of `text`, each a dict, list or scalar; empty documents are left out."""
    documents: list[list[Line]] = [[]]
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.rstrip() == "---" or raw.startswith("--- "):
            documents.append([])
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlSubsetError(f"line {number}: tab in indentation")
        content = _strip_comment(raw).rstrip()
        if content.strip():
            indent = len(content) - len(content.lstrip(" "))
            documents[-1].append(Line(number, indent, content.strip()))
    loaded = []
    for lines in documents:
        if not lines:
            continue
        value, end = _block(lines, 0, lines[0].indent)
        if end != len(lines):
            raise YamlSubsetError(f"line {lines[end].number}: unexpected indentation")
        loaded.append(value)
    return loaded


def _strip_comment(raw: str) -> str:
    quote = ""
    for index, char in enumerate(raw):
        if quote:
            if char == quote and not (quote == '"' and raw[index - 1] == "\\"):
                quote = ""
        elif char in "\"'" and (index == 0 or raw[index - 1] in " -[{,:"):
            quote = char
        elif char == "#" and (index == 0 or raw[index - 1] == " "):
            return raw[:index]
    return raw


def _is_item(line: Line) -> bool:
    return line.text == "-" or line.text.startswith("- ")


def _block(lines: list[Line], start: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[start]):
        return _sequence(lines, start, indent)
    return _mapping(lines, start, indent)


def _mapping(lines: list[Line], start: int, indent: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    index = start
    while index < len(lines) and lines[index].indent == indent and not _is_item(lines[index]):
        line = lines[index]
        match = _KEY.match(line.text)
        if match is None:
            raise YamlSubsetError(f"line {line.number}: expected `key: value`")
        key = match["key"]
        if key[0] in "\"'":
            key = _scalar(key, line.number)
        if key in result:
            raise YamlSubsetError(f"line {line.number}: duplicate key {key!r}")
        rest = line.text[match.end() :]
        index += 1
        if rest:
            result[key] = _scalar(rest, line.number)
        elif index < len(lines) and lines[index].indent > indent:
            result[key], index = _block(lines, index, lines[index].indent)
        elif index < len(lines) and lines[index].indent == indent and _is_item(lines[index]):
            result[key], index = _sequence(lines, index, indent)
        else:
            result[key] = None
    if index < len(lines) and lines[index].indent > indent:
        raise YamlSubsetError(f"line {lines[index].number}: unexpected indentation")
    return result, index


def _sequence(lines: list[Line], start: int, indent: int) -> tuple[list[Any], int]:
    result: list[Any] = []
    index = start
    while index < len(lines) and lines[index].indent == indent and _is_item(lines[index]):
        line = lines[index]
        rest = line.text[1:].lstrip(" ")
        if not rest:
            if index + 1 >= len(lines) or lines[index + 1].indent <= indent:
                result.append(None)
                index += 1
                continue
            value, index = _block(lines, index + 1, lines[index + 1].indent)
        elif _KEY.match(rest) or rest == "-" or rest.startswith("- "):
            # `- key: value` opens a mapping (or `- - x` a sequence) at the item's column.
            column = indent + len(line.text) - len(rest)
            lines[index] = Line(line.number, column, rest)
            value, index = _block(lines, index, column)
        else:
            value = _scalar(rest, line.number)
            index += 1
        result.append(value)
    return result, index


def _scalar(text: str, number: int) -> Any:
    text = text.strip()
    if text.startswith('"'):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise YamlSubsetError(f"line {number}: double-quoted string: {exc}") from exc
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise YamlSubsetError(f"line {number}: unterminated single-quoted string")
        return text[1:-1].replace("''", "'")
    if text.startswith("["):
        if not text.endswith("]"):
            raise YamlSubsetError(f"line {number}: flow sequences must fit on one line")
        inner = text[1:-1].strip()
        return [_scalar(item, number) for item in inner.split(",")] if inner else []
    if text == "{}":
        return {}
    if text[0] in "{&*!|>%@`?":
        raise YamlSubsetError(
            f"line {number}: {text[0]!r} (flow maps, anchors, tags, block scalars)"
        )
    if text in ("~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if text.lower() in _AMBIGUOUS:
        raise YamlSubsetError(f"line {number}: quote {text!r}: YAML 1.1 reads it as a boolean")
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def test_the_yaml_reader_reads_block_yaml_and_refuses_the_rest() -> None:
    text = """\
# comment
a: 1
b: "two # not a comment"  # a comment
c:
  - x: 'it''s'
    y: [1, "z"]
  - plain text: with colon
- nope
"""
    with pytest.raises(YamlSubsetError):
        load_yaml(text)
    assert load_yaml(text.replace("- nope\n", "d: {}\ne: 0.1.0\n---\nf:\n- g\n- -1\n")) == [
        {
            "a": 1,
            "b": "two # not a comment",
            "c": [{"x": "it's", "y": [1, "z"]}, {"plain text": "with colon"}],
            "d": {},
            "e": "0.1.0",
        },
        {"f": ["g", -1]},
    ]
    for bad in ("a: &anchor 1\n", "a: |\n  text\n", "a: yes\n", "a: 1\n  b: 2\n", "a: 1\na: 2\n"):
        with pytest.raises(YamlSubsetError):
            load_yaml(bad)


# The manifests


@cache
def documents(path: Path) -> tuple[Any, ...]:
    return tuple(load_yaml(path.read_text(encoding="utf-8")))


def manifests() -> list[Path]:
    return sorted(KUBERNETES.glob("*.yaml"))


def objects(kind: str, *, examples: bool = False) -> dict[str, dict[str, Any]]:
    """The objects of a kind in the manifests, by name (the example Secrets only if asked)."""
    found: dict[str, dict[str, Any]] = {}
    for path in manifests():
        if path.name.endswith(".example.yaml") != examples:
            continue
        for document in documents(path):
            if document.get("kind") == kind:
                found[document["metadata"]["name"]] = document
    return found


def kustomization() -> dict[str, Any]:
    [document] = documents(KUBERNETES / "kustomization.yaml")
    assert isinstance(document, dict)
    return document


def prefix(service: str) -> str:
    return f"SW_{service.upper().replace('-', '_')}_"


def http_port(service: str) -> int:
    """The port the service listens on when nothing overrides it: its settings' default."""
    settings = importlib.import_module(f"singlewindow.{service.replace('-', '_')}.settings")
    port: int = settings.Settings.model_fields["http_port"].default
    return port


def deployment(service: str) -> dict[str, Any]:
    found = objects("Deployment")
    assert service in found, f"no Deployment for services/{service}"
    return found[service]


def container(service: str) -> dict[str, Any]:
    [only] = deployment(service)["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def port_number(service: str, port: int | str) -> int:
    """A probe's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container(service)["ports"] if p["name"] == port]
    assert isinstance(number, int)
    return number


def env(service: str) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in container(service).get("env", [])}


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * factor
    return float(quantity) / 2**20


def test_every_manifest_is_a_kubernetes_object() -> None:
    assert manifests()
    for path in manifests():
        for document in documents(path):
            assert isinstance(document, dict), path
            assert {"apiVersion", "kind"} <= document.keys(), path
            if document["kind"] != "Kustomization":
                assert document["metadata"]["name"], path


def test_the_kustomization_deploys_every_manifest_but_the_examples() -> None:
    listed = set(kustomization()["resources"])
    present = {
        path.name
        for path in manifests()
        if path.name != "kustomization.yaml" and not path.name.endswith(".example.yaml")
    }
    assert listed == present


def test_every_service_has_a_deployment() -> None:
    assert set(SERVICES) <= set(objects("Deployment"))


@pytest.mark.parametrize("service", SERVICES)
def test_the_deployment_probes_health_and_readiness_on_the_service_port(service: str) -> None:
    port = http_port(service)
    spec = container(service)
    assert [p["containerPort"] for p in spec["ports"]] == [port]
    liveness = spec["livenessProbe"]["httpGet"]
    readiness = spec["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert readiness["path"] == "/readyz"
    assert port_number(service, liveness["port"]) == port
    assert port_number(service, readiness["port"]) == port
    # The service reads its port from its own variable: what the probes expect must be it.
    assert env(service)[f"{prefix(service)}HTTP_PORT"]["value"] == str(port)


@pytest.mark.parametrize("service", SERVICES)
def test_the_deployment_requests_and_limits_cpu_and_memory(service: str) -> None:
    resources = container(service)["resources"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[bound].keys(), bound
    # An idle service holds about 100 MB: the limit leaves room above that, the request too.
    assert mebibytes(resources["requests"]["memory"]) >= 128
    assert mebibytes(resources["limits"]["memory"]) >= mebibytes(resources["requests"]["memory"])


@pytest.mark.parametrize("service", SERVICES)
def test_the_deployment_runs_unprivileged_on_a_read_only_filesystem(service: str) -> None:
    pod = deployment(service)["spec"]["template"]["spec"]
    context = container(service)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    assert not context.get("privileged", False)
    assert not pod.get("hostNetwork", False)
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("service", SERVICES)
def test_the_deployment_takes_credentials_from_its_own_secret_only(service: str) -> None:
    variables = env(service)
    own = f"{service}-credentials"
    database = () if service in BUS_CLIENTS else ("DATABASE_URL",)
    for name in ("NATS_USER", "NATS_PASSWORD", *database):
        reference = variables[prefix(service) + name]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": own, "key": prefix(service) + name}
    secrets = {
        variable["valueFrom"]["secretKeyRef"]["name"]
        for variable in variables.values()
        if "secretKeyRef" in variable.get("valueFrom", {})
    }
    assert secrets == {own}
    assert "envFrom" not in container(service)
    for name in variables:
        assert name.startswith(prefix(service)) or name == "PCSCLITE_CSOCK_NAME", name
    nats_url = variables[prefix(service) + "NATS_URL"]["valueFrom"]["configMapKeyRef"]
    assert nats_url == {"name": CONFIG, "key": "NATS_URL"}
    host = variables[prefix(service) + "HTTP_HOST"]["valueFrom"]["configMapKeyRef"]
    assert host == {"name": CONFIG, "key": "HTTP_HOST"}


def test_the_shared_configuration_points_at_nats_and_listens_on_the_pod_address() -> None:
    [generator] = [g for g in kustomization()["configMapGenerator"] if g["name"] == CONFIG]
    literals = dict(literal.split("=", 1) for literal in generator["literals"])
    assert literals["NATS_URL"] == NATS_URL
    assert literals["HTTP_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("service", SERVICES)
def test_prometheus_scrapes_the_service_metrics(service: str) -> None:
    annotations = deployment(service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(http_port(service))


@pytest.mark.parametrize("service", SERVICES)
def test_a_kubernetes_service_exposes_the_http_port(service: str) -> None:
    spec = objects("Service")[service]["spec"]
    labels = deployment(service)["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items()
    [port] = spec["ports"]
    assert port["port"] == http_port(service)
    assert port_number(service, port["targetPort"]) == http_port(service)


@pytest.mark.parametrize("service", [s for s in SERVICES if s != HARDWARE])
def test_a_replicated_service_keeps_two_pods_and_a_disruption_budget(service: str) -> None:
    spec = deployment(service)["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = objects("PodDisruptionBudget")[service]["spec"]
    assert budget["selector"] == spec["selector"]
    assert 1 <= budget["minAvailable"] < spec["replicas"]


def test_card_gateway_runs_once_on_a_reader_node_with_its_pcscd() -> None:
    spec = deployment(HARDWARE)["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    assert pod["nodeSelector"] == {"singlewindow.cn/card-reader": "true"}
    [pcscd] = [v for v in pod["volumes"] if "hostPath" in v]
    assert pcscd["hostPath"]["path"] == "/run/pcscd"
    [mount] = [m for m in container(HARDWARE)["volumeMounts"] if m["name"] == pcscd["name"]]
    assert mount["readOnly"] is True
    assert HARDWARE not in objects("PodDisruptionBudget")


def test_example_secrets_hold_placeholders_for_every_key_the_deployments_read() -> None:
    examples = objects("Secret", examples=True)
    generated = NATS / "values-permissions.yaml"
    [values] = documents(generated)
    nats_users = [
        user["user"] for user in values["config"]["merge"]["accounts"]["SINGLEWINDOW"]["users"]
    ]
    for service in SERVICES:
        data = examples[f"{service}-credentials"]["stringData"]
        user = BUS_CLIENTS.get(service, service)
        database = () if service in BUS_CLIENTS else ("DATABASE_URL",)
        # issue 10: accounts also reads the keys it seals secrets with at rest.
        extra = {"SW_ACCOUNTS_SECRET_KEYS"} if service == "accounts" else set()
        assert (
            set(data)
            == {prefix(service) + key for key in ("NATS_USER", "NATS_PASSWORD", *database)} | extra
        )
        assert data[prefix(service) + "NATS_USER"] == user
        assert user in nats_users
        assert "PLACEHOLDER" in data[prefix(service) + "NATS_PASSWORD"]
        if not database:
            continue
        assert "PLACEHOLDER" in data[prefix(service) + "DATABASE_URL"]
        assert data[prefix(service) + "DATABASE_URL"].startswith("postgresql+asyncpg://")
    [nats_secret] = documents(NATS / "secret.example.yaml")
    assert set(nats_secret["stringData"]) == set(nats_users)
    assert all("PLACEHOLDER" in value for value in nats_secret["stringData"].values())
    references = {
        variable["valueFrom"]["secretKeyRef"]["key"]
        for variable in values["container"]["env"].values()
    }
    assert references == set(nats_users)


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_is_the_services_build_of_the_dockerfile(service: str) -> None:
    assert container(service)["image"] == f"singlewindow/{service}"
    assert f"singlewindow/{service}" in {image["name"] for image in kustomization()["images"]}
    stages = re.split(r"(?m)^FROM ", DOCKERFILE.read_text(encoding="utf-8"))
    [stage] = [s for s in stages if s.startswith(f"runtime AS run-{service}\n")]
    assert f"EXPOSE {http_port(service)}\n" in stage
    module = service.replace("-", "_")
    assert f'CMD ["python", "-m", "singlewindow.{module}"]' in stage


def nats_values() -> dict[str, Any]:
    [values] = documents(NATS / "values.yaml")
    assert isinstance(values, dict)
    return values


def certificates() -> dict[str, dict[str, Any]]:
    """The cert-manager objects of deploy/nats/certificates.yaml, by kind and name."""
    return {
        f"{document['kind']}/{document['metadata']['name']}": document
        for document in documents(NATS / "certificates.yaml")
    }


def test_jetstream_syncs_every_write_before_acknowledging_it() -> None:
    assert nats_values()["config"]["jetstream"]["merge"]["sync_interval"] == "<< always >>"


def test_nats_speaks_tls_to_clients_and_between_servers_with_cert_manager_certificates() -> None:
    config = nats_values()["config"]
    found = certificates()
    issued = {
        document["spec"]["secretName"]: document
        for document in found.values()
        if document["kind"] == "Certificate"
    }
    for tls in (config["nats"]["tls"], config["cluster"]["tls"]):
        assert tls["enabled"] is True
        certificate = issued[tls["secretName"]]
        assert certificate["metadata"]["namespace"] == "nats"
        assert certificate["spec"]["issuerRef"] == {
            "kind": "ClusterIssuer",
            "name": "singlewindow-nats-ca",
            "group": "cert-manager.io",
        }
    assert "client auth" in issued[config["cluster"]["tls"]["secretName"]]["spec"]["usages"]
    assert "nats.nats.svc" in issued[config["nats"]["tls"]["secretName"]]["spec"]["dnsNames"]
    assert nats_values()["tlsCA"]["enabled"] is True
    ca = found["ClusterIssuer/singlewindow-nats-ca"]["spec"]["ca"]["secretName"]
    assert issued[ca]["spec"]["isCA"] is True


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_connects_over_tls_trusting_the_nats_ca(service: str) -> None:
    assert env(service)[prefix(service) + "NATS_TLS_CA_FILE"]["value"] == CA_FILE
    pod = deployment(service)["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "nats-ca"]
    assert volume["secret"] == {
        "secretName": "nats-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    [mount] = [m for m in container(service)["volumeMounts"] if m["name"] == "nats-ca"]
    assert mount == {"name": "nats-ca", "mountPath": "/etc/nats-ca", "readOnly": True}
    [certificate] = [
        c for c in objects("Certificate").values() if c["spec"]["secretName"] == "nats-ca"
    ]
    assert certificate["spec"]["issuerRef"]["name"] == "singlewindow-nats-ca"


def test_no_user_of_the_helm_values_is_the_shared_swctl_one() -> None:
    [values] = documents(NATS / "values-permissions.yaml")
    users = [u["user"] for u in values["config"]["merge"]["accounts"]["SINGLEWINDOW"]["users"]]
    assert users == [
        *(service for service in SERVICES if service not in BUS_CLIENTS),
        "portal",
        "workstation",
        "subscriber",
        "operator",
        "notifier",
        "business",
    ]
