"""Static checks of the deployment files (run by tests/deploy/run.sh in the deploy venv).

  python validate.py --stompede BIN [--only dockerfile|nginx|kubernetes]

What it proves, check by check (each prints ok or FAILED, and the run ends with a count):
  * the Dockerfile is multi-stage, runs as a non-root uid, copies only the binary into the
    runtime stage, exposes the broker's ports, and its ignore file keeps build output out;
    the broker binary needs no shared library beyond what the slim runtime image has;
  * the nginx configs keep idle connections far longer than any heart-beat, pass the
    Upgrade/Connection headers and list several nodes (nginx-test.sh tests them live);
  * `kubectl kustomize` renders the base and both overlays (production with throwaway keys in
    a copy of the tree, as an operator would provide them);
  * Helm's own engine (Helm v4's Go SDK through helm-python-sdk) lints the chart strictly and
    renders it with its default values and with the examples/ values files; values that
    would break an install are refused at render time;
  * every rendered object validates, strictly (no unknown fields), against the Kubernetes
    schemas of the oldest and newest pinned releases (KUBE_VERSIONS);
  * each rendering is coherent: selectors match the pod labels, probes hit the admin port,
    terminationGracePeriodSeconds covers preStop + the broker's grace_ms, the Ingress keeps
    idle WebSockets open well beyond the heart-beat, mounted paths match the config's paths;
  * every configuration file parses with the real broker (`stompede config check`), and the
    Helm chart gives the same objects and the same effective broker configuration as the
    Kustomize tree it mirrors (base = default values, overlays = examples/*-values.yaml);
  * every value in values.yaml has a comment and a row in the chart README;
  * the dev overlay's users file logs its documented users in, against the real broker.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "stompede"
# The oldest Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest schema set
# kubernetes-validate (pinned in requirements.txt) ships.
KUBE_VERSIONS = ["1.27.0", "1.37.0"]
ADMIN_PORT = 15692
HELM_ONLY_LABELS = {"helm.sh/chart", "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}

passed: list[str] = []
failed: list[str] = []


def check(name: str, fn, *args):
    """Runs one check; an exception or a false assertion is a failure, reported with why."""
    started = time.monotonic()
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
        failed.append(name)
        print(f"FAILED {name}: {type(exc).__name__}: {exc}", flush=True)
        return
    passed.append(name)
    print(f"ok     {name} ({time.monotonic() - started:.1f}s)", flush=True)


def run(cmd: list[str], **kw) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------
def dockerfile_stages() -> list[dict]:
    """Parses deploy/Dockerfile into stages of (instruction, arguments), joining continuations."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines, current = [], ""
    for raw in text.splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        current += raw.rstrip("\\").strip() + " " if raw.rstrip().endswith("\\") else raw.strip()
        if not raw.rstrip().endswith("\\"):
            lines.append(current)
            current = ""
    stages: list[dict] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append({"from": m.group(1), "name": m.group(2), "ops": []})
        elif stages:
            stages[-1]["ops"].append((op, rest))
    return stages


def check_dockerfile():
    stages = dockerfile_stages()
    assert len(stages) >= 2, f"expected a multi-stage build, found {len(stages)} stage(s)"
    builder, runtime = stages[0], stages[-1]
    assert builder["from"].startswith("rust:"), f"builder stage is {builder['from']}, not a rust image"
    assert re.match(r"(debian:\S*slim|gcr\.io/distroless/)", runtime["from"].replace("${DEBIAN_RELEASE}", "x")), \
        f"runtime stage {runtime['from']} is neither debian-slim nor distroless"
    build = " ".join(a for op, a in builder["ops"] if op == "RUN")
    for needed in ("cargo build", "--release", "--locked", "-p stompede"):
        assert needed in build, f"builder does not run `{needed}`"
    users = [a for op, a in runtime["ops"] if op == "USER"]
    assert users, "runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"runtime USER {users[-1]} is not a numeric non-root uid"
    copies = [a for op, a in runtime["ops"] if op in ("COPY", "ADD")]
    assert len(copies) == 1, f"runtime stage copies {len(copies)} things, expected only the binary: {copies}"
    assert copies[0].startswith(f"--from={builder['name']} ") and copies[0].split()[1].endswith("/stompede"), \
        f"runtime stage copy is not the builder's binary: {copies[0]}"
    exposed = {int(p.split("/")[0]) for op, a in runtime["ops"] if op == "EXPOSE" for p in a.split()}
    assert {61613, 61614, 15674, 15673, 15692} <= exposed, f"EXPOSE lists {sorted(exposed)}"
    entry = [a for op, a in runtime["ops"] if op == "ENTRYPOINT"]
    assert entry and "/stompede" in entry[-1], "no ENTRYPOINT running the binary"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for pattern in (".git", "target", "**/node_modules"):
        assert pattern in ignore, f"Dockerfile.dockerignore does not exclude {pattern}"


# What debian:*-slim (and distroless/cc) provide; the runtime stage installs nothing more.
BASE_IMAGE_LIBS = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0",
                   "libdl.so.2", "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}


def check_binary_needs_only_base_libs(stompede: str):
    """The runtime stage copies the binary alone: it must need no library the base lacks."""
    needed = set()
    for line in run(["ldd", stompede]).splitlines():
        name = line.split()[0] if line.strip() else ""
        if name:
            needed.add(Path(name).name)
    extra = needed - BASE_IMAGE_LIBS
    assert not extra, f"the broker links {sorted(extra)}, which the runtime image does not have"


# ---------------------------------------------------------------------------------------------
# nginx (its behaviour is tested live by nginx-test.sh; these are the settings a short test
# cannot observe)
# ---------------------------------------------------------------------------------------------
def nginx_directives(path: Path) -> list[list[str]]:
    text = re.sub(r"#.*", "", path.read_text())
    return [d.split() for d in re.split(r"[;{}]", text) if d.strip()]


def seconds(value: str) -> int:
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    assert m, f"cannot read the duration {value}"
    n, unit = int(m.group(1)), m.group(2) or "s"
    return {"ms": n // 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]


def check_nginx_static():
    # The broker's heart-beat: it sends every send_ms and allows receive_ms x grace_factor of
    # client silence (the defaults: 1 s, 10 s x 3). Proxy idle timeouts must be far above.
    floor_s = 600
    http = nginx_directives(DEPLOY / "nginx" / "stompede.conf")
    stream = nginx_directives(DEPLOY / "nginx" / "stompede-stream.conf")
    for name, directives, keys in (("stompede.conf", http, ("proxy_read_timeout", "proxy_send_timeout")),
                                   ("stompede-stream.conf", stream, ("proxy_timeout",))):
        for key in keys:
            values = [d[1] for d in directives if d[0] == key and len(d) > 1]
            assert values, f"{name}: no {key} (nginx's default is 60 s)"
            assert all(seconds(v) >= floor_s for v in values), f"{name}: {key} {values} below {floor_s}s"
        upstream = [d for d in directives if d[0] == "server" and len(d) > 1 and ":" in d[1]]
        assert len(upstream) >= 2, f"{name}: the upstream should list several nodes"
        assert any(d[0] == "listen" and "ssl" in d for d in directives), f"{name}: no TLS listener"
    headers = {tuple(d[1:]) for d in http if d[0] == "proxy_set_header"}
    assert ("Upgrade", "$http_upgrade") in headers, "stompede.conf does not pass the Upgrade header"
    assert ("Connection", "$connection_upgrade") in headers, "stompede.conf does not pass Connection: upgrade"
    assert ["proxy_http_version", "1.1"] in http, "WebSocket upgrades need proxy_http_version 1.1"
    assert any(d[:3] == ["map", "$http_upgrade", "$connection_upgrade"] for d in http), "no $connection_upgrade map"


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def make_secrets(directory: Path, stompede: str) -> dict[str, str]:
    """A throwaway certificate and users file, as an operator would put in secrets/."""
    directory.mkdir(parents=True, exist_ok=True)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=stompede.example.com", "-keyout", str(directory / "tls.key"),
         "-out", str(directory / "tls.crt")])
    users = run([stompede, "passwd", "--user", "admin", "--roles", "admin"], input="check-only\n")
    (directory / "users.toml").write_text(users)
    return {name: (directory / name).read_text() for name in ("tls.crt", "tls.key", "users.toml")}


def kustomize_all(kubectl: str, work: Path, secrets: dict[str, str]) -> dict[str, list[dict]]:
    tree = work / "kubernetes"
    shutil.copytree(DEPLOY / "kubernetes", tree)
    for name, content in secrets.items():
        (tree / "overlays" / "production" / "secrets" / name).write_text(content)
    out = {}
    for target in ("base", "overlays/dev", "overlays/production"):
        out[target] = load_docs(run([kubectl, "kustomize", str(tree / target)]))
    return out


def helm_render(values: dict) -> list[dict]:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name="stompede", namespace="stompede", is_install=True)
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(load_docs(text))
    return docs


def helm_cases(secrets: dict[str, str]) -> dict[str, dict]:
    users = {"auth": {"usersToml": secrets["users.toml"]}}
    prod = yaml.safe_load((CHART / "examples" / "production-values.yaml").read_text())
    prod.setdefault("tls", {}).update({"cert": secrets["tls.crt"], "key": secrets["tls.key"]})
    prod["auth"] = users["auth"]
    dev = yaml.safe_load((CHART / "examples" / "dev-values.yaml").read_text())
    dev["auth"] = {"usersToml": (DEPLOY / "kubernetes/overlays/dev/dev-users.toml").read_text()}
    return {"default": users, "dev": dev, "production": prod}


def check_helm_lint(cases: dict[str, dict]):
    for case, values in cases.items():
        report = helm.lint(str(CHART), values, strict=True, kube_version="v1.27.0")
        bad = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not bad, f"helm lint ({case} values): {bad}"


def check_helm_refuses_bad_values(secrets: dict[str, str]):
    users = {"usersToml": secrets["users.toml"]}
    bad_cases = {
        "no users": ({}, "auth.usersToml"),
        "grace too short": ({"auth": users, "shutdown": {"terminationGracePeriodSeconds": 30}},
                            "terminationGracePeriodSeconds"),
        "tls without a certificate": ({"auth": users, "tls": {"enabled": True}}, "tls.enabled"),
        "TLS service without TLS": ({"auth": users, "stompTlsService": {"enabled": True}}, "stompTlsService"),
    }
    for case, (values, expected) in bad_cases.items():
        try:
            helm_render(values)
        except helm.HelmError as exc:
            assert expected in str(exc), f"{case}: refused, but the message does not name {expected}: {exc}"
        else:
            raise AssertionError(f"{case}: the chart rendered values that must be refused")


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def check_schemas(docs: list[dict]):
    assert docs, "nothing rendered"
    for version in KUBE_VERSIONS:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                raise AssertionError(f"{doc['kind']}/{doc['metadata']['name']} against Kubernetes "
                                     f"{version}: {where}: {exc.message}") from None


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def config_of(docs: list[dict], sts: dict) -> dict:
    cm_name = next(v["configMap"]["name"] for v in sts["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == cm_name)
    return tomllib.loads(cm["data"]["stompede.toml"])


def check_coherent(docs: list[dict]):
    sts = one(docs, "StatefulSet")
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    selector = sts["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items(), "StatefulSet selector does not match its pod labels"
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    headless = services.get(sts["spec"]["serviceName"])
    assert headless and headless["spec"].get("clusterIP") == "None", "serviceName is not a headless Service"
    for svc in services.values():
        assert svc["spec"]["selector"].items() <= labels.items(), f"Service {svc['metadata']['name']} selects no pod"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "PDB selects no pod"

    spec = pod["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports.get("admin") == ADMIN_PORT, f"no admin port {ADMIN_PORT}: {ports}"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "admin"), f"{probe} is {get}, expected {path} on admin"
    env = {e["name"]: e for e in container.get("env", [])}
    assert env["STOMPEDE_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", \
        "STOMPEDE_NODE_ID is not the pod name"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False

    config = config_of(docs, sts)
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep", f"preStop is {sleep}, expected a sleep"
    grace_ms = config["shutdown"]["grace_ms"]
    total = spec["terminationGracePeriodSeconds"]
    assert total * 1000 > int(sleep[1]) * 1000 + grace_ms, \
        f"terminationGracePeriodSeconds {total} does not cover preStop {sleep[1]} s + grace_ms {grace_ms}"

    # The config's listeners are the container's ports, and off loopback it is secure mode.
    listeners = config["listeners"]
    for key, port_name in (("tcp", "stomp"), ("websocket", "ws"), ("admin", "admin"), ("tcp_tls", "stomp-tls")):
        address = listeners.get(key, "")
        if address:
            assert int(address.rsplit(":", 1)[1]) == ports.get(port_name), f"listeners.{key} {address} vs port {port_name}"
        else:
            assert port_name not in ports, f"port {port_name} declared but listeners.{key} is off"
    assert config["auth"]["mode"] == "secure", "listeners are off loopback: auth must be secure"
    assert config["cluster"]["enabled"] is True

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])}

    def mounted(path: str) -> str:
        mount = max((m for m in mounts if path.startswith(m + "/")), key=len, default=None)
        assert mount, f"{path} is on no mounted volume"
        return mounts[mount]

    assert mounted(config["store"]["path"] + "/x") in claims | {"data"}, "the store is not on the data volume"
    assert "secret" in volumes[mounted(config["auth"]["users_file"])], "users_file is not from a Secret"
    if listeners.get("tcp_tls"):
        for key in ("cert", "key"):
            vol = volumes[mounted(config["tls"][key])]
            secret = next(d for d in by_kind(docs, "Secret") if d["metadata"]["name"] == vol["secret"]["secretName"])
            assert secret["type"] == "kubernetes.io/tls", "the TLS listener's Secret is not kubernetes.io/tls"

    ingress = one(docs, "Ingress")
    notes = ingress["metadata"]["annotations"]
    heartbeat_s = max(config.get("heartbeat", {}).get("receive_ms", 10000), 10000) / 1000 * 3
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        value = int(notes[f"nginx.ingress.kubernetes.io/{key}"])
        assert value >= 600 and value > heartbeat_s, f"Ingress {key} {value}s is not far above the heart-beat"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert backend["path"] == listeners.get("websocket_path", "/ws")
    assert backend["backend"]["service"]["port"]["name"] == "ws"
    assert backend["backend"]["service"]["name"] in services


def check_configs_parse(stompede: str, renders: dict[str, list[dict]], work: Path) -> dict[str, str]:
    """`stompede config check` on every rendered config; returns the effective settings."""
    effective = {}
    for name, docs in renders.items():
        sts = one(docs, "StatefulSet")
        cm_name = next(v["configMap"]["name"] for v in sts["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
        cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == cm_name)
        path = work / (re.sub(r"\W", "_", name) + ".toml")
        path.write_text(cm["data"]["stompede.toml"])
        effective[name] = run([stompede, "config", "check", str(path)])
    return effective


# ---------------------------------------------------------------------------------------------
# Helm and Kustomize give the same install
# ---------------------------------------------------------------------------------------------
def normalize(docs: list[dict], drop_secrets: bool) -> dict[tuple[str, str], dict]:
    """Removes what legitimately differs: generated name suffixes, Helm's own labels and
    checksum annotations, namespaces, Secret contents (throwaway keys), config text (compared
    through the broker's effective settings instead), and list order of named items."""
    names = {}
    for d in docs:
        generated = re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])
        names[d["metadata"]["name"]] = generated

    def walk(node):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k in ("labels", "matchLabels") and isinstance(v, dict):
                    v = {lk: lv for lk, lv in v.items() if lk not in HELM_ONLY_LABELS}
                if k == "annotations" and isinstance(v, dict):
                    v = {ak: av for ak, av in v.items() if not ak.startswith("checksum/")}
                    if not v:
                        continue
                if k == "namespace":
                    continue
                out[k] = walk(v)
            return out
        if isinstance(node, list):
            items = [walk(v) for v in node]
            if items and all(isinstance(i, dict) and "name" in i for i in items):
                items.sort(key=lambda i: str(i["name"]))
            return items
        if isinstance(node, str):
            return names.get(node, node)
        return node

    out = {}
    for d in docs:
        if d["kind"] == "Secret":
            if drop_secrets:
                continue
            d = {**d, "data": sorted(d.get("data", {}))}
        if d["kind"] == "ConfigMap":
            d = {**d, "data": sorted(d["data"])}
        d = walk(copy.deepcopy(d))
        out[(d["kind"], d["metadata"]["name"])] = d
    return out


def diff(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'helm' if k in b else 'kustomize'}")
            else:
                out.extend(diff(a[k], b[k], f"{path}/{k}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [x for i, (p, q) in enumerate(zip(a, b)) for x in diff(p, q, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: kustomize {a!r} != helm {b!r}"]


def check_parity(kustomized: list[dict], helmed: list[dict], eff_k: str, eff_h: str, drop_secrets: bool):
    differences = diff(normalize(kustomized, drop_secrets), normalize(helmed, drop_secrets))
    assert not differences, "the chart and the Kustomize tree differ:\n  " + "\n  ".join(differences[:20])
    assert eff_k == eff_h, "the effective broker configurations differ:\n" + "\n".join(
        f"  kustomize: {x}\n  helm:      {y}" for x, y in zip(eff_k.splitlines(), eff_h.splitlines()) if x != y)


# ---------------------------------------------------------------------------------------------
# Chart documentation
# ---------------------------------------------------------------------------------------------
def leaf_keys(node, prefix="") -> list[str]:
    if isinstance(node, dict) and node:
        return [k for key, v in node.items() for k in leaf_keys(v, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def check_values_documented():
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    lines = text.splitlines()
    # Every key at any level has a comment on the line(s) just above it, unless it is a
    # sub-key of a value documented as a whole (e.g. resources.requests.cpu).
    undocumented = []
    documented_blocks = set()
    path: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, m.group(2)))
        dotted = ".".join(k for _, k in path)
        if any(dotted.startswith(b + ".") for b in documented_blocks):
            continue
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --"):
            j -= 1
        if j >= 0 and lines[j].strip().startswith("# --"):
            documented_blocks.add(dotted)
        elif not isinstance(_get(values, dotted), dict):
            undocumented.append(dotted)
    assert not undocumented, f"values without a '# --' comment: {undocumented}"
    readme = (CHART / "README.md").read_text()
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", readme, re.M))
    missing = [k for k in documented_blocks if k not in rows]
    assert not missing, f"values missing from the README table: {sorted(missing)}"
    stale = [r for r in rows if _get(values, r, missing=KeyError) is KeyError]
    assert not stale, f"README documents values that do not exist: {sorted(stale)}"


def _get(values, dotted, missing=None):
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return missing
        node = node[part]
    return node


# ---------------------------------------------------------------------------------------------
# The dev users file, against the real broker
# ---------------------------------------------------------------------------------------------
def check_dev_users_log_in(stompede: str, work: Path):
    users_file = DEPLOY / "kubernetes/overlays/dev/dev-users.toml"
    documented = re.findall(r"(\w+)/(\w+-dev)", users_file.read_text().split("\n\n")[0])
    assert len(documented) == 3, f"the header should document three user/password pairs: {documented}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = work / "dev-users-check.toml"
    config.write_text(f'[listeners]\ntcp = "127.0.0.1:{port}"\nwebsocket = ""\nadmin = ""\n'
                      f'[auth]\nmode = "secure"\nusers_file = "{users_file}"\nfailed_login_delay_ms = 0\n'
                      '[store]\nkind = "memory"\n[chat]\nenabled = false\n[log]\nlevel = "warn"\n')
    broker = subprocess.Popen([stompede, "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert broker.poll() is None, f"broker exited: {broker.stderr.read().decode()[-1000:]}"
                assert time.monotonic() < deadline, "broker did not listen within 20 s"
                time.sleep(0.1)
        for user, password in documented + [("alice", "wrong")]:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(f"CONNECT\naccept-version:1.2\nhost:x\nlogin:{user}\npasscode:{password}\n\n\0".encode())
                reply = b""
                while b"\0" not in reply:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            wanted = b"ERROR" if password == "wrong" else b"CONNECTED"
            assert reply.startswith(wanted), f"{user}: expected {wanted.decode()}, got {reply[:200]!r}"
    finally:
        broker.terminate()
        broker.wait(timeout=15)


# ---------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stompede", required=True, help="the broker binary (config check, passwd)")
    parser.add_argument("--kubectl", default=shutil.which("kubectl") or "kubectl")
    parser.add_argument("--only", choices=["dockerfile", "nginx", "kubernetes"])
    args = parser.parse_args()
    assert os.access(args.stompede, os.X_OK), f"no broker binary at {args.stompede}"

    if args.only in (None, "dockerfile"):
        check("Dockerfile: multi-stage, non-root, only the binary in the runtime stage", check_dockerfile)
        check("the broker binary links only what the slim runtime image has", check_binary_needs_only_base_libs,
              args.stompede)
    if args.only in (None, "nginx"):
        check("nginx configs: idle timeouts far above the heart-beat, upgrade headers, TLS, several nodes",
              check_nginx_static)
    if args.only in (None, "kubernetes"):
        print(f"Helm SDK {helm.helm_sdk_version()}, kubernetes-validate {kubernetes_validate.version.__version__}, "
              f"Kubernetes schemas {', '.join(KUBE_VERSIONS)}", flush=True)
        with tempfile.TemporaryDirectory(prefix="stompede-deploy-") as tmp:
            work = Path(tmp)
            secrets = make_secrets(work / "secrets", args.stompede)
            renders: dict[str, list[dict]] = {}

            def render_kustomize():
                for target, docs in kustomize_all(args.kubectl, work, secrets).items():
                    renders[f"kustomize {target}"] = docs

            def render_helm():
                for case, values in helm_cases(secrets).items():
                    renders[f"helm {case}"] = helm_render(values)

            check("kubectl kustomize: base, overlays/dev, overlays/production", render_kustomize)
            check("helm template (Helm's engine): default, dev and production values", render_helm)
            check("helm lint --strict: default, dev and production values", check_helm_lint, helm_cases(secrets))
            check("the chart refuses values that would break an install", check_helm_refuses_bad_values, secrets)
            check("values.yaml: every value commented and in the README table", check_values_documented)
            for name, docs in renders.items():
                check(f"{name}: {len(docs)} objects valid (strict) for Kubernetes {' and '.join(KUBE_VERSIONS)}",
                      check_schemas, docs)
                check(f"{name}: selectors, probes, termination, Ingress timeouts, mounts agree", check_coherent, docs)
            effective: dict[str, str] = {}

            def parse_configs():
                effective.update(check_configs_parse(args.stompede, renders, work))

            check("every rendered config passes `stompede config check`", parse_configs)
            for kustomized, helmed, drop in (("base", "default", True), ("overlays/dev", "dev", False),
                                             ("overlays/production", "production", False)):
                k, h = f"kustomize {kustomized}", f"helm {helmed}"
                if k in renders and h in renders and k in effective and h in effective:
                    check(f"helm ({helmed} values) = kustomize {kustomized}: objects and effective config",
                          check_parity, renders[k], renders[h], effective[k], effective[h], drop)
                else:
                    check(f"helm ({helmed} values) = kustomize {kustomized}", _missing, f"{k} or {h}")
            check("overlays/dev/dev-users.toml: documented users log in, a wrong password does not",
                  check_dev_users_log_in, args.stompede, work)

    print(f"\nvalidate: {len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _missing(what: str):
    raise AssertionError(f"cannot compare: {what} did not render or parse (see above)")


if __name__ == "__main__":
    sys.exit(main())
