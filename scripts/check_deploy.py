#!/usr/bin/env python3
"""Checks deploy/flextoe-dpu.yaml (static pod) and deploy/flextoe-dpu.service.

    scripts/check_deploy.py [--default-config FILE] [--self-test]

Asserts what a BlueField standalone kubelet needs and what the service's
defaults imply: hostNetwork, privileged, hugepages-2Mi requests = limits,
whole-core CPU requests = limits (Guaranteed QoS: the static CPU manager
pins), memory requests = limits, the configuration directory and the
control-socket directory through hostPath, the readiness probe on /metrics
at the port of metrics.listen, the entrypoint's configuration path, and the
systemd unit using the same path. With the `kubernetes_validate` package
installed, the pod is also validated against the Kubernetes API schema
(strict: unknown fields are errors).

--default-config FILE: the service's defaults (`flextoe-dpu default-config`);
without it the binary in target/release is asked, else the defaults are read
from pipeline-config's source.

--binary FLEXTOE_DPU: also runs `systemd-analyze verify` on the unit (with the
binary's path in ExecStart, since it checks that the program exists).

--self-test: breaks the manifest in known ways and requires each break to be
reported (the check can fail).

Exit 0 when everything holds, 1 listing every problem.
"""
import argparse
import copy
import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_PATH = "/etc/flextoe/config.json"
KUBERNETES_VERSION = "1.28.0"  # a kubelet of the DOCA BSP era; the fields used are old


def load_defaults(path):
    if path:
        with open(path) as f:
            return json.load(f)
    binary = os.path.join(ROOT, "target", "release", "flextoe-dpu")
    if os.access(binary, os.X_OK):
        out = subprocess.run([binary, "default-config"], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    def source_default(rel, pattern):
        with open(os.path.join(ROOT, rel)) as f:
            m = re.search(pattern, f.read())
        if not m:
            sys.exit(f"check_deploy: cannot find the default in {rel}")
        return m.group(1)

    return {
        "metrics": {
            "enabled": True,
            "listen": source_default(
                "pipeline-config/src/model/metrics.rs", r'listen: "([^"]+)"\.to_owned\(\)'
            ),
        },
        "host": {
            "control_socket": source_default(
                "pipeline-config/src/model/host.rs", r'control_socket: "([^"]+)"\.to_owned\(\)'
            )
        },
    }


def quantity(value):
    """Kubernetes quantity to a number (bytes or cores)."""
    s = str(value)
    units = {
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
        "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 1e-3,
    }
    for suffix, factor in units.items():
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * factor
    return float(s)


def check_pod(pod, defaults):
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    need(pod.get("apiVersion") == "v1" and pod.get("kind") == "Pod", "not a v1 Pod")
    spec = pod.get("spec") or {}
    need(spec.get("hostNetwork") is True, "spec.hostNetwork must be true")
    containers = spec.get("containers") or []
    need(len(containers) == 1, "exactly one container expected")
    if not containers:
        return problems
    c = containers[0]
    need(str(c.get("image", "")).startswith("localhost/flextoe-dpu:"),
         "image must be the locally loaded localhost/flextoe-dpu:<version>")
    need(c.get("imagePullPolicy") == "Never", "imagePullPolicy must be Never (no registry on the DPU)")
    need((c.get("securityContext") or {}).get("privileged") is True,
         "securityContext.privileged must be true")
    argv = list(c.get("command") or []) + list(c.get("args") or [])
    need(argv == ["/usr/bin/flextoe-dpu", "run", "--config", CONFIG_PATH],
         f"command+args must be /usr/bin/flextoe-dpu run --config {CONFIG_PATH}, got {argv}")

    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    for key in ("cpu", "memory", "hugepages-2Mi"):
        need(key in req and key in lim, f"resources.requests and limits must both set {key}")
        if key in req and key in lim:
            need(quantity(req[key]) == quantity(lim[key]),
                 f"resources.requests.{key} ({req[key]}) must equal limits.{key} ({lim[key]})")
    if "cpu" in req:
        cpu = quantity(req["cpu"])
        need(cpu >= 1 and cpu == int(cpu),
             f"resources cpu must be whole cores (static CPU manager pinning), got {req['cpu']}")
    if "hugepages-2Mi" in req:
        need(quantity(req["hugepages-2Mi"]) >= 2**21 and quantity(req["hugepages-2Mi"]) % 2**21 == 0,
             "hugepages-2Mi must be a positive multiple of 2Mi")

    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}

    def host_path_mount(container_dir, what):
        m = mounts.get(container_dir)
        need(m is not None, f"{what}: no volumeMount at {container_dir}")
        if m is None:
            return None
        v = volumes.get(m.get("name"))
        need(v is not None and "hostPath" in v,
             f"{what}: volume {m.get('name')!r} mounted at {container_dir} must be a hostPath")
        return m

    m = host_path_mount(os.path.dirname(CONFIG_PATH), "configuration")
    if m is not None:
        need(volumes[m["name"]]["hostPath"].get("path") == os.path.dirname(CONFIG_PATH),
             f"configuration hostPath must be {os.path.dirname(CONFIG_PATH)} on the DPU too")
    sock_dir = os.path.dirname(defaults["host"]["control_socket"])
    m = host_path_mount(sock_dir, "control-socket directory (host.control_socket)")
    if m is not None:
        need(not m.get("readOnly"), "the control-socket directory must be writable")
    huge = [v for v in volumes.values()
            if (v.get("emptyDir") or {}).get("medium") == "HugePages-2Mi"]
    need(len(huge) == 1, "one emptyDir volume with medium HugePages-2Mi expected")
    if huge:
        need(any(mm.get("name") == huge[0]["name"] for mm in mounts.values()),
             "the HugePages-2Mi volume must be mounted")

    probe = (c.get("readinessProbe") or {}).get("httpGet")
    need(probe is not None, "readinessProbe.httpGet missing")
    if probe is not None:
        need(probe.get("path") == "/metrics", "readinessProbe must GET /metrics")
        need(defaults["metrics"].get("enabled", True), "metrics.enabled is false by default?")
        host, _, port = defaults["metrics"]["listen"].rpartition(":")
        need(str(probe.get("port")) == port,
             f"readinessProbe port {probe.get('port')} is not metrics.listen's port {port}")
        if host in ("127.0.0.1", "[::1]"):
            need(probe.get("host") == host.strip("[]"),
                 f"metrics.listen is loopback ({host}): the probe must set host: {host.strip('[]')}")
    return problems


def check_unit(text):
    problems = []
    execs = [line.split("=", 1)[1].strip() for line in text.splitlines()
             if line.startswith("ExecStart=")]
    if execs != [f"/usr/bin/flextoe-dpu run --config {CONFIG_PATH}"]:
        problems.append(f"flextoe-dpu.service: ExecStart must be "
                        f"/usr/bin/flextoe-dpu run --config {CONFIG_PATH}, got {execs}")
    if "RuntimeDirectory=flextoe" not in text.splitlines():
        problems.append("flextoe-dpu.service: RuntimeDirectory=flextoe (the control socket's) missing")
    return problems


def systemd_problems(unit, binary):
    """`systemd-analyze verify` on the unit, the binary's path put in (it must exist)."""
    import shutil as sh  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    if not binary or not sh.which("systemd-analyze"):
        return None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "flextoe-dpu.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/bin/flextoe-dpu", os.path.abspath(binary)))
        out = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
        text = (out.stdout + out.stderr).replace(d + "/", "")
        lines = [line for line in text.splitlines() if line.strip()]
        if out.returncode != 0 or lines:
            return [f"systemd-analyze verify: {line}" for line in lines] or [
                f"systemd-analyze verify exited {out.returncode}"]
    return []


def schema_problems(pod):
    try:
        import kubernetes_validate  # noqa: PLC0415 (optional)
    except ImportError:
        return None
    try:
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"Kubernetes {KUBERNETES_VERSION} schema: {'.'.join(map(str, e.path))}: {e.message}"]
    return []


def all_problems(pod, defaults, unit, binary):
    problems = check_pod(pod, defaults) + check_unit(unit)
    schema = schema_problems(pod)
    systemd = systemd_problems(unit, binary)
    return problems + (schema or []) + (systemd or []), schema is not None, systemd is not None


def self_test(pod, defaults, unit):
    def broken(edit):
        p = copy.deepcopy(pod)
        edit(p)
        return p

    c = lambda p: p["spec"]["containers"][0]  # noqa: E731
    cases = {
        "no hostNetwork": broken(lambda p: p["spec"].pop("hostNetwork")),
        "not privileged": broken(lambda p: c(p)["securityContext"].update(privileged=False)),
        "cpu limit != request": broken(lambda p: c(p)["resources"]["limits"].update(cpu="5")),
        "fractional cpu": broken(lambda p: (c(p)["resources"]["limits"].update(cpu="1500m"),
                                            c(p)["resources"]["requests"].update(cpu="1500m"))),
        "no hugepages limit": broken(lambda p: c(p)["resources"]["limits"].pop("hugepages-2Mi")),
        "probe on the wrong port": broken(lambda p: c(p)["readinessProbe"]["httpGet"].update(port=8080)),
        "probe on the wrong path": broken(lambda p: c(p)["readinessProbe"]["httpGet"].update(path="/")),
        "no control-socket mount": broken(lambda p: c(p).update(volumeMounts=[
            m for m in c(p)["volumeMounts"] if m["mountPath"] != "/run/flextoe"])),
        "other config path": broken(lambda p: c(p).update(args=["run", "--config", "/etc/x.json"])),
    }
    failures = []
    for name, p in cases.items():
        if not check_pod(p, defaults):
            failures.append(f"self-test: '{name}' was not detected")
    if not check_unit(unit.replace(CONFIG_PATH, "/etc/flextoe.json")):
        failures.append("self-test: a unit with another config path was not detected")
    schema = schema_problems(broken(lambda p: c(p).update(imagePullPolicy=7, bogusField=1)))
    if schema == []:
        failures.append("self-test: the schema check accepted an invalid pod")
    return failures, len(cases) + 1 + (schema is not None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default=os.path.join(ROOT, "deploy", "flextoe-dpu.yaml"))
    ap.add_argument("--unit", default=os.path.join(ROOT, "deploy", "flextoe-dpu.service"))
    ap.add_argument("--default-config")
    ap.add_argument("--binary", help="flextoe-dpu, for `systemd-analyze verify` of the unit")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()

    with open(args.manifest) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    if len(docs) != 1:
        sys.exit(f"check_deploy: {args.manifest}: expected one YAML document, found {len(docs)}")
    pod = docs[0]
    with open(args.unit) as f:
        unit = f.read()
    defaults = load_defaults(args.default_config)

    problems, schema_checked, unit_verified = all_problems(pod, defaults, unit, args.binary)
    for p in problems:
        print(f"check_deploy: {args.manifest}: {p}", file=sys.stderr)
    if problems:
        print(f"check_deploy: FAILED: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_deploy: {os.path.relpath(args.manifest, ROOT)} and "
          f"{os.path.relpath(args.unit, ROOT)}: ok (probe port "
          f"{defaults['metrics']['listen'].rpartition(':')[2]}, control socket "
          f"{defaults['host']['control_socket']}; Kubernetes {KUBERNETES_VERSION} schema: "
          f"{'valid' if schema_checked else 'not checked, kubernetes_validate not installed'}; "
          f"systemd-analyze verify: {'clean' if unit_verified else 'not run'})")
    if args.self_test:
        failures, n = self_test(pod, defaults, unit)
        for f in failures:
            print(f"check_deploy: {f}", file=sys.stderr)
        if failures:
            return 1
        print(f"check_deploy: self-test: all {n} broken variants were rejected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
