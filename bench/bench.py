#!/usr/bin/env python3
"""Benchmarks kubectl-gitops against the real kubectl on one real control plane.

Generates a fixture repository (N objects of mixed kinds across namespaces, reproducible
from a seed), starts the test control plane (or uses a running one with --state), runs
each operation for ours and for kubectl alternately several times, counts the API requests
each made (from the API server's audit log, by user agent) and prints a table of medians,
ratios, requests and peak memory.

    python3 bench/bench.py                 # the full run (N=1000), writes BENCHMARKS.md
    python3 bench/bench.py --smoke         # small N, one repeat: CI runs it so it cannot rot

Timings are reported, never asserted; --smoke checks only that every row ran.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import platform
import random
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "tests" / "cluster" / "cluster.sh"


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- fixtures

def objects(n, seed, namespaces, variant=0):
    """N objects of mixed kinds, spread over `namespaces`; `variant` changes ten of them.
    Deployments have real pod templates (two containers, env from the ConfigMaps, probes,
    resources, volumes); one in a hundred runs a pod (on kwok's fake nodes), the rest are
    scaled to zero. Services are headless: the rounds create thousands, and a test
    cluster's service IP range (10.0.0.0/24) holds 254; a ClusterIP Service costs the
    server one more write (the IP allocation), the same for both sides."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ns = namespaces[i % len(namespaces)]
        kind = rng.choices(["ConfigMap", "Secret", "Service", "Deployment", "ServiceAccount"],
                           [35, 12, 18, 25, 10])[0]
        name = f"{kind.lower()}-{i:05d}"
        value = f"value-{rng.randrange(10**9)}"
        if variant and i % max(1, n // 10) == 0 and kind == "ConfigMap":
            value += f"-v{variant}"
        labels = f"    app.kubernetes.io/name: {name}\n    app.kubernetes.io/part-of: bench\n    tier: t{i % 7}\n"
        meta = f"metadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n{labels}"
        if kind == "ConfigMap":
            body = (f"apiVersion: v1\nkind: ConfigMap\n{meta}data:\n  key: {value}\n"
                    f"  settings.yaml: |\n    level: info\n    retries: {rng.randrange(1, 9)}\n    endpoint: http://svc-{i % 97}:8080\n")
        elif kind == "Secret":
            body = f"apiVersion: v1\nkind: Secret\n{meta}type: Opaque\nstringData:\n  token: {value}\n"
        elif kind == "ServiceAccount":
            body = f"apiVersion: v1\nkind: ServiceAccount\n{meta}automountServiceAccountToken: false\n"
        elif kind == "Service":
            body = (f"apiVersion: v1\nkind: Service\n{meta}spec:\n"
                    f"  clusterIP: None\n  selector: {{app: {name}}}\n  ports:\n  - name: http\n    port: {rng.randrange(1000, 9000)}\n    targetPort: http\n")
        else:
            replicas = 1 if i % 100 == 3 else 0
            body = (f"apiVersion: apps/v1\nkind: Deployment\n{meta}spec:\n"
                    f"  replicas: {replicas}\n  revisionHistoryLimit: 2\n  selector:\n    matchLabels: {{app: {name}}}\n"
                    f"  template:\n    metadata:\n      labels: {{app: {name}, tier: t{i % 7}}}\n"
                    f"      annotations: {{prometheus.io/scrape: 'true', prometheus.io/port: '9090'}}\n"
                    f"    spec:\n      terminationGracePeriodSeconds: 20\n      containers:\n"
                    f"      - name: main\n        image: registry.example.com/team/{name}:{rng.randrange(1, 9)}.{rng.randrange(0, 20)}\n"
                    f"        args: [--listen=:8080, --metrics=:9090]\n"
                    f"        ports:\n        - {{name: http, containerPort: 8080}}\n        - {{name: metrics, containerPort: 9090}}\n"
                    f"        env:\n        - {{name: MODE, value: production}}\n        - name: POD_NAME\n          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}\n"
                    f"        envFrom:\n        - configMapRef: {{name: settings, optional: true}}\n"
                    f"        resources:\n          requests: {{cpu: 50m, memory: 64Mi}}\n          limits: {{memory: 128Mi}}\n"
                    f"        readinessProbe:\n          httpGet: {{path: /ready, port: http}}\n          periodSeconds: 10\n"
                    f"        livenessProbe:\n          httpGet: {{path: /live, port: http}}\n          initialDelaySeconds: 5\n"
                    f"        volumeMounts:\n        - {{name: config, mountPath: /etc/app}}\n        - {{name: cache, mountPath: /cache}}\n"
                    f"      - name: proxy\n        image: registry.example.com/infra/proxy:1.{rng.randrange(0, 30)}\n"
                    f"        ports:\n        - {{name: proxy, containerPort: 15001}}\n"
                    f"        resources:\n          requests: {{cpu: 10m, memory: 32Mi}}\n"
                    f"      volumes:\n      - name: config\n        configMap: {{name: settings, optional: true}}\n"
                    f"      - name: cache\n        emptyDir: {{sizeLimit: 256Mi}}\n")
        out.append((f"{ns}/{name}.yaml", body))
    return out


def changed_count(n, seed, namespaces):
    return sum(1 for (p, a), (_, b) in zip(objects(n, seed, namespaces), objects(n, seed, namespaces, 1)) if a != b)


def write_tree(directory, files):
    for path, body in files:
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    # No automatic gc: after a big commit git would pack the fixture in the background
    # while the commands are measured.
    return subprocess.run(["git", "-C", str(repo), "-c", "gc.auto=0", *args], check=True, capture_output=True, text=True, env=env).stdout


def fixture_repo(directory, n, seed, namespaces):
    """A repository with two commits under objs/: the base, and ten objects changed."""
    directory.mkdir(parents=True)
    git(directory, "init", "-q", "-b", "main")
    write_tree(directory / "objs", objects(n, seed, namespaces))
    git(directory, "add", "-A")
    git(directory, "commit", "-qm", "base")
    write_tree(directory / "objs", objects(n, seed, namespaces, 1))
    git(directory, "commit", "-qam", "ten changed")
    return directory


CHART_TEMPLATE = """{{- $n := int .Values.count }}
{{- $every := max 1 (div $n 10) }}
{{- range $i := until $n }}
{{- $kind := mod $i 4 }}
{{- $name := printf "obj-%05d" $i }}
---
{{- if eq $kind 0 }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  labels: {app.kubernetes.io/part-of: bench-chart}
data:
  key: value-{{ $i }}{{ if eq (mod $i $every) 0 }}-r{{ $.Values.rev }}{{ end }}
  settings.yaml: |
    level: {{ $.Values.level }}
    endpoint: http://svc-{{ mod $i 97 }}:8080
{{- else if eq $kind 1 }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
type: Opaque
stringData:
  token: token-{{ $i }}
{{- else if eq $kind 2 }}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
spec:
  clusterIP: None
  selector: {app: {{ $name }}}
  ports:
  - {name: http, port: 8080}
{{- else }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
spec:
  replicas: 0
  selector:
    matchLabels: {app: {{ $name }}}
  template:
    metadata:
      labels: {app: {{ $name }}}
    spec:
      containers:
      - name: main
        image: {{ $.Values.image }}:{{ mod $i 9 }}
        ports:
        - {name: http, containerPort: 8080}
        env:
        - {name: LEVEL, value: {{ $.Values.level | quote }}}
        resources:
          requests: {cpu: 50m, memory: 64Mi}
        readinessProbe:
          httpGet: {path: /ready, port: http}
{{- end }}
{{- end }}
"""


def chart_files(n, rev):
    """A chart that renders `n` objects (ConfigMaps, Secrets, headless Services,
    Deployments); raising `rev` changes ten of its ConfigMaps."""
    return [
        ("Chart.yaml", "apiVersion: v2\nname: bench\nversion: 0.1.0\n"),
        ("values.yaml", f"count: {n}\nrev: {rev}\nlevel: info\nimage: registry.example.com/team/app\n"),
        ("templates/objects.yaml", CHART_TEMPLATE),
    ]


def chart_repo(directory, n):
    """A repository with the chart under chart/: the base, then ten objects changed."""
    directory.mkdir(parents=True)
    git(directory, "init", "-q", "-b", "main")
    write_tree(directory / "chart", chart_files(n, 1))
    git(directory, "add", "-A")
    git(directory, "commit", "-qm", "base")
    write_tree(directory / "chart", chart_files(n, 2))
    git(directory, "commit", "-qam", "ten changed")
    return directory


# ---------------------------------------------------------------- measuring

class Cluster:
    def __init__(self, state):
        self.state = Path(state)
        env = {}
        for line in (self.state / "env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        self.kubeconfig = env["KUBECTL_GITOPS_TEST_KUBECONFIG"]
        self.bin = Path(env["KUBECTL_GITOPS_TEST_BIN"])
        self.audit = self.state / "logs" / "audit.log"
        pid_file = self.state / "pids" / "kube-apiserver"
        self.apiserver_pid = int(pid_file.read_text().strip()) if pid_file.exists() else None

    def apiserver_cpu(self):
        """CPU seconds the API server has used so far (user + system), or None."""
        if self.apiserver_pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.apiserver_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # utime and stime are fields 14 and 15 of stat; [0] here is field 3.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def apiserver_rss(self):
        """The API server's resident memory now, in MiB, or None."""
        if self.apiserver_pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.apiserver_pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def etcd_db_mib(self):
        """The size of etcd's database file, in MiB (a test cluster's quota is 4 GiB)."""
        db = self.state / "etcd" / "member" / "snap" / "db"
        return db.stat().st_size / 1024 / 1024 if db.exists() else None

    def kubectl(self, *args, check=True):
        return subprocess.run([str(self.bin / "kubectl"), "--kubeconfig", self.kubeconfig, *args],
                              check=check, capture_output=True, text=True)


def audit_offset(cluster):
    return cluster.audit.stat().st_size if cluster.audit.exists() else 0


def requests_since(cluster, offset, agent):
    """Requests by user agent prefix since `offset`, by verb (the audit log is written as
    each request completes)."""
    counts = {}
    with open(cluster.audit, "rb") as log_file:
        log_file.seek(offset)
        for line in log_file:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("stage") != "ResponseComplete":
                continue
            if not event.get("userAgent", "").startswith(agent):
                continue
            verb = event.get("verb", "?")
            if verb == "patch" and "dryRun=All" in event.get("requestURI", ""):
                verb = "patch(dry-run)"
            counts[verb] = counts.get(verb, 0) + 1
    return counts


LOADS = []  # the 1-minute load average before each measured command
SETTLED = []  # seconds waited for the controllers before each measured command

# What the control plane writes by itself after objects are created: ReplicaSets, pods,
# Endpoints and EndpointSlices, Deployments' status.
CONTROLLER_AGENTS = ("kube-controller-manager/", "kube-scheduler/")
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def settle(cluster, quiet=2.0, limit=600):
    """Waits until the controllers have caught up with what was created before (no write
    of theirs for `quiet` seconds, at most `limit` seconds), so that a command is measured
    on a quiet control plane and not behind an earlier round's backlog: 10,000 objects
    leave the controllers thousands of writes to make. Returns the seconds waited."""
    started = time.perf_counter()
    offset = audit_offset(cluster)
    last_write = started
    while True:
        time.sleep(0.5)
        now = time.perf_counter()
        new_offset = audit_offset(cluster)
        writes = sum(count for agent in CONTROLLER_AGENTS
                     for verb, count in requests_since(cluster, offset, agent).items() if verb in WRITES)
        offset = new_offset
        if writes:
            last_write = now
        if now - last_write >= quiet or now - started >= limit:
            waited = now - started
            if now - started >= limit:
                log(f"the controllers were still writing after {limit} s; measuring anyway")
            SETTLED.append(waited)
            return waited


# GNU time, which forks the command from its own small process: a command started from
# this one inherits its peak resident memory (Linux carries a process's peak across exec,
# and a vfork child's is the parent's), so wait4's figure was at least this script's.
PEAK = "/usr/bin/time"


def run(cmd, env, cwd, expect=(0,)):
    """Runs a command; returns (seconds, its peak RSS in MiB)."""
    LOADS.append(os.getloadavg()[0])
    peak = tempfile.NamedTemporaryFile(prefix="kubectl-gitops-bench-peak-", delete=False)
    peak.close()
    started = time.perf_counter()
    process = subprocess.Popen([PEAK, "-q", "-f", "%M", "-o", peak.name, *map(str, cmd)], cwd=cwd,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # stderr is read while the command runs: a pipe holds 64 KiB, and a command that
    # fills it waits for a reader (a sync of 10,000 objects prints a line per object).
    chunks = []
    reader = threading.Thread(target=lambda: chunks.append(process.stderr.read()), daemon=True)
    reader.start()
    code = process.wait()
    elapsed = time.perf_counter() - started
    reader.join()
    process.stderr.close()
    stderr = b"".join(chunks).decode(errors="replace")
    with open(peak.name) as f:
        kib = f.read().strip()
    os.unlink(peak.name)
    if code not in expect:
        raise SystemExit(f"{' '.join(map(str, cmd))} exited {code}:\n{stderr}")
    return elapsed, int(kib.splitlines()[-1]) / 1024


class Row:
    def __init__(self, name, target):
        self.name, self.target = name, target
        self.objects = None  # set on the rows whose time per object is compared across sizes
        self.ours, self.base = [], []
        self.ours_mem, self.base_mem = [], []
        self.ours_requests, self.base_requests = {}, {}
        self.ours_cpu, self.base_cpu = [], []
        self.server_mem = []  # the API server's resident memory after each command

    def median(self, values):
        return statistics.median(values) if values else None

    def cells(self):
        ours, base = self.median(self.ours), self.median(self.base)
        ratio = f"{base / ours:.1f}x" if ours and base else "-"
        fmt = lambda v: f"{v * 1000:.0f} ms" if v is not None else "-"
        # The median (the targets are medians) and the largest of the rounds.
        mem = lambda v: (f"{statistics.median(v):.0f} MiB (max {max(v):.0f})" if len(v) > 1
                         else f"{v[0]:.0f} MiB") if v else "-"
        req = lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r.items())) or "-"
        cpu = lambda v: f"{statistics.median(v):.2f} s" if v else "-"
        server_mem = f"{max(self.server_mem):.0f} MiB" if self.server_mem else "-"
        return [self.name, fmt(ours), fmt(base), ratio, self.target, req(self.ours_requests),
                req(self.base_requests), cpu(self.ours_cpu), cpu(self.base_cpu),
                server_mem, mem(self.ours_mem), mem(self.base_mem)]


HEADER = ["operation", "ours (median)", "kubectl (median)", "ratio", "target", "our requests",
          "kubectl requests", "API server CPU (ours)", "API server CPU (kubectl)",
          "API server memory (max after)", "our peak memory", "the other's peak memory"]


def table(rows):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(row.cells()) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the rows

ROW_GROUPS = ["sync", "diff", "drift", "helm", "deps", "dashboard", "reconcile", "range", "read", "help"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", default="1000",
                        help="objects of the cluster rows; several sizes, comma-separated (1000,10000), "
                             "are measured one after the other on the same control plane")
    parser.add_argument("--big", type=int, default=10000, help="objects for the no-cluster rows")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--state", help="a running control plane's state directory (else one is started)")
    parser.add_argument("--profile", default="release", help="cargo profile of the plugins (dev for smoke runs)")
    parser.add_argument("--smoke", action="store_true", help="small N, one repeat, no BENCHMARKS.md")
    parser.add_argument("--write", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--rows", default=",".join(ROW_GROUPS),
                        help=f"the groups of rows to run, comma-separated (of {','.join(ROW_GROUPS)}); "
                             "a run of some rows never writes BENCHMARKS.md")
    parser.add_argument("--chart-objects", type=int, default=1000, help="objects the chart of the helm rows renders")
    args = parser.parse_args()
    if args.smoke:
        args.objects, args.big, args.repeat, args.namespaces, args.chart_objects = "20,40", 200, 1, 2, 40
    try:
        args.objects = [int(n) for n in str(args.objects).split(",") if n.strip()]
    except ValueError:
        parser.error(f"--objects takes numbers, comma-separated: {args.objects!r}")
    if not args.objects or min(args.objects) <= 0:
        parser.error("--objects needs at least one size above 0")
    args.rows = {r.strip() for r in args.rows.split(",") if r.strip()}
    unknown = args.rows - set(ROW_GROUPS)
    if unknown:
        parser.error(f"unknown row groups {sorted(unknown)}; known: {', '.join(ROW_GROUPS)}")

    log(f"building the plugins ({args.profile})")
    subprocess.run(["cargo", "build", "--quiet", "--profile", args.profile, "--bins",
                    "--example", "read_revision"], cwd=ROOT, check=True)
    target_dir = ROOT / "target" / ("debug" if args.profile == "dev" else args.profile)
    args.read_revision = target_dir / "examples" / "read_revision"
    work = Path(tempfile.mkdtemp(prefix="kubectl-gitops-bench-"))
    plugins = work / "plugins"
    plugins.mkdir()
    for binary in target_dir.glob("kubectl-*"):
        if binary.is_file() and os.access(binary, os.X_OK):
            (plugins / binary.name).symlink_to(binary)

    started_here = args.state is None
    state = Path(args.state) if args.state else work / "cluster"
    if started_here:
        log("starting the control plane")
        subprocess.run(["bash", str(CLUSTER), "up", str(state)], check=True, stdout=subprocess.DEVNULL)
    cluster = Cluster(state)
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig, HOME=str(work), NO_COLOR="1",
               PATH=f"{plugins}:{cluster.bin}:{os.environ['PATH']}")
    kubectl = str(cluster.bin / "kubectl")
    rows = []
    try:
        rows = measure(args, cluster, env, kubectl, work)
    finally:
        if started_here:
            subprocess.run(["bash", str(CLUSTER), "down", str(state)], check=False, stdout=subprocess.DEVNULL)
        # The fixtures of a full run take ~300 MB.
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    scaling = per_object(rows)
    if scaling:
        print(scaling)
    missing = [r.name for r in rows if not r.ours]
    if missing:
        raise SystemExit(f"rows that did not run: {missing}")
    if not args.smoke and args.rows == set(ROW_GROUPS):
        write_report(args, rows)


def measure(args, cluster, env, kubectl, work):
    """Every row: the cluster rows once per size of --objects (smallest first), the others
    once, after the last size."""
    out = []
    sizes = sorted(set(args.objects))
    for n in sizes:
        sized = work / f"n{n}"
        sized.mkdir()
        out += measure_size(args, n, n == sizes[-1], cluster, env, kubectl, work, sized)
    return out


def targets(n):
    """The targets of the cluster rows: the 10,000-object ones are the stricter ones."""
    if n >= 10000:
        return {"sync": ">= 3x, <= 150 MiB", "noop": ">= 30x, zero PATCH, <= 150 MiB",
                "diff_changed": ">= 5x", "diff_same": ">= 60x, one LIST per kind, <= 150 MiB",
                "drift": "< 1 s, one LIST per kind"}
    return {"sync": ">= 3x", "noop": ">= 10x, zero PATCH", "diff_changed": ">= 5x",
            "diff_same": ">= 20x, one LIST per kind", "drift": "< 1 s, one LIST per kind"}


def measure_size(args, n, last, cluster, env, kubectl, root, work):
    """The rows of `n` objects, in `work`; with `last`, the rows that do not depend on
    `n` too (`root` holds the plugins)."""
    seed, target = args.seed, targets(n)
    tag = f"b{os.getpid() % 10000}n{n}"
    namespaces = [f"{tag}-ns{i}" for i in range(args.namespaces)]
    for ns in namespaces + [f"{tag}-records"]:
        cluster.kubectl("create", "namespace", ns)
    records = f"{tag}-records"
    rows = args.rows
    repo = fixture_repo(work / "repo", n, seed, namespaces)
    base_dir, changed_dir = work / "base", work / "changed"
    if "diff" in rows:
        write_tree(base_dir, objects(n, seed, namespaces))
        write_tree(changed_dir, objects(n, seed, namespaces, 1))
    changed = changed_count(n, seed, namespaces)
    ours_agent, kubectl_agent, helm_agent = "kubectl-gitops/", "kubectl/", "Helm/"
    out = []

    def measured(row, which, cmd, agent, expect=(0,), cwd=repo):
        waited = settle(cluster)
        if waited > 10:
            log(f"waited {waited:.0f} s for the controllers to catch up")
        offset = audit_offset(cluster)
        cpu_before = cluster.apiserver_cpu()
        seconds, mem = run(cmd, env, cwd, expect)
        cpu_after = cluster.apiserver_cpu()
        time.sleep(0.3)  # let the audit log catch up
        counts = requests_since(cluster, offset, agent)
        cpus = row.ours_cpu if which == "ours" else row.base_cpu
        rss = cluster.apiserver_rss()
        if rss is not None:
            row.server_mem.append(rss)
        if cpu_before is not None and cpu_after is not None:
            cpus.append(cpu_after - cpu_before)
        log(f"{row.name}: {which} {seconds * 1000:.0f} ms")
        if which == "ours":
            row.ours.append(seconds); row.ours_mem.append(mem); row.ours_requests = counts
        else:
            row.base.append(seconds); row.base_mem.append(mem); row.base_requests = counts

    # Sync from empty: each round gets its own copy of the objects (fresh namespaces), so
    # both start from nothing.
    sync_empty = Row(f"sync from empty, {n} objects", target["sync"])
    sync_empty.objects = n
    noop_sync = Row(f"no-op resync, {n} objects", target["noop"])
    if "sync" in rows:
        out += [sync_empty, noop_sync]
    rounds = args.repeat if "sync" in rows else 0
    # Unmeasured, first: a fresh API server's first thousand writes cost it more (its heap
    # is still small, so its garbage collector runs more often), and whoever went first
    # paid for that (ours: ~1.2 s in the first round against ~0.7 s in the others).
    log("warming the control plane up")
    warm = [f"{tag}-warm-{i}" for i in range(args.namespaces)]
    for ns in warm:
        cluster.kubectl("create", "namespace", ns)
    write_tree(work / "warm", objects(n, seed, warm))
    cluster.kubectl("apply", "--server-side", "-R", "-f", str(work / "warm"))
    for round_ in range(rounds):
        # Each goes first in every other round.
        for who in ("ours", "kubectl") if round_ % 2 == 0 else ("kubectl", "ours"):
            nss = [f"{tag}-{who[0]}{round_}-{i}" for i in range(args.namespaces)]
            for ns in nss:
                cluster.kubectl("create", "namespace", ns)
            r = fixture_repo(work / f"empty-{who}-{round_}", n, seed, nss)
            if who == "ours":
                cmd = [kubectl, "sync", "HEAD~1", "objs", "--app", f"e{round_}", "-n", records, "--yes", "--wait=false"]
                measured(sync_empty, "ours", cmd, ours_agent, cwd=r)
                measured(noop_sync, "ours", cmd, ours_agent, cwd=r)
            else:
                d = work / f"empty-dir-{round_}"
                write_tree(d, objects(n, seed, nss))
                cmd = [kubectl, "apply", "--server-side", "-R", "-f", str(d)]
                measured(sync_empty, "kubectl", cmd, kubectl_agent)
                measured(noop_sync, "kubectl", cmd, kubectl_agent)

    # The diff rows: the base revision is live (synced by us), the second commit changes ten.
    if rows & {"diff", "drift"}:
        log("syncing the base revision for the diff and drift rows")
        run([kubectl, "sync", "HEAD~1", "objs", "--app", "diffbase", "-n", records, "--yes", "--wait=false"], env, repo)
    diff_changed = Row(f"diff-git, {n} objects, {changed} changed", target["diff_changed"])
    diff_same = Row(f"diff-git, {n} objects, nothing changed", target["diff_same"])
    kubectl_diff = [kubectl, "diff", "--server-side", "--force-conflicts", "-R", "-f"]
    if "diff" in rows:
        out = [diff_changed, diff_same] + out
    for _ in range(args.repeat if "diff" in rows else 0):
        measured(diff_changed, "ours", [kubectl, "diff-git", "HEAD", "objs", "--app", "diffbase", "-n", records], ours_agent, (1,))
        measured(diff_changed, "kubectl", kubectl_diff + [str(changed_dir)], kubectl_agent, (1,))
        measured(diff_same, "ours", [kubectl, "diff-git", "HEAD~1", "objs", "--app", "diffbase", "-n", records], ours_agent, (0,))
        measured(diff_same, "kubectl", kubectl_diff + [str(base_dir)], kubectl_agent, (0, 1))

    # Drift of the synced app, nothing drifted: the release's manifest against one LIST per
    # kind (no alternative: kubectl has no such command).
    if "drift" in rows:
        drift_row = Row(f"drift, {n} objects, nothing drifted", target["drift"])
        for _ in range(args.repeat):
            measured(drift_row, "ours", [kubectl, "drift", "diffbase", "-n", records], ours_agent, (0,))
        out.append(drift_row)

    if "helm" in rows and last:
        out += helm_rows(args, cluster, measured, kubectl, work, tag)
    if "dashboard" in rows and last:
        out += dashboard_rows(args, cluster, env, kubectl, work, tag)
    if "reconcile" in rows and last:
        out += reconcile_rows(args, cluster, env, root, work, tag)

    # No cluster: two revisions of a big repository.
    if not last or not rows & {"range", "read", "help"}:
        log_etcd(cluster)
        return out
    big = fixture_repo(work / "big", args.big, seed, [f"x{i}" for i in range(args.namespaces)])
    range_row = Row(f"rev..rev diff, {args.big} objects, no cluster", "< 1 s, < 200 MiB")
    for _ in range(args.repeat if "range" in rows else 0):
        seconds, mem = run([kubectl, "diff-git", "HEAD~1..HEAD", "objs", "-o", "name"], env, big, (1,))
        range_row.ours.append(seconds); range_row.ours_mem.append(mem)

    # Reading a revision's files, nothing else on either side: ours from the object
    # database (the library's source module, as every plugin reads), git's by checking the
    # revision out into a new worktree and reading the files back.
    read_row = Row(f"reading a {args.big}-file revision (no parsing on either side)",
                   ">= 3x vs git worktree add + read")
    reader = [str(args.read_revision), str(big), "HEAD", "objs"]
    said = subprocess.run(reader, env=env, capture_output=True, text=True, check=True).stdout
    if not said.startswith(f"{args.big} files"):
        raise SystemExit(f"read_revision read {said!r}, expected {args.big} files")
    for i in range(args.repeat if "read" in rows else 0):
        seconds, mem = run(reader, env, big)
        read_row.ours.append(seconds); read_row.ours_mem.append(mem)
        tree = work / f"worktree-{i}"
        checkout, mem = run(["git", "-C", str(big), "worktree", "add", "-q", "--detach", str(tree), "HEAD"],
                            env, big)
        started = time.perf_counter()
        count = 0
        for path in (tree / "objs").rglob("*.yaml"):
            path.read_bytes()
            count += 1
        read_row.base.append(checkout + time.perf_counter() - started); read_row.base_mem.append(mem)
        git(big, "worktree", "remove", "--force", str(tree))
        if count != args.big:
            raise SystemExit(f"the worktree had {count} files, expected {args.big}")

    # Start-up: the plugin binary printing its help, against kubectl printing the help of
    # its own diff (both exit at once; kubectl is the real thing a user runs).
    help_row = Row("--help start-up: kubectl-diff_git vs kubectl diff", "< 10 ms")
    binary = str(next((root / "plugins").glob("kubectl-diff_git")))
    for _ in range(max(10, args.repeat * 7) if "help" in rows else 0):
        seconds, mem = run([binary, "--help"], env, repo)
        help_row.ours.append(seconds); help_row.ours_mem.append(mem)
        seconds, mem = run([kubectl, "diff", "--help"], env, repo)
        help_row.base.append(seconds); help_row.base_mem.append(mem)

    out += [r for r, group in ((range_row, "range"), (read_row, "read"), (help_row, "help")) if group in rows]
    if "deps" in rows and last:
        out.append(remote_dependencies_row(args, cluster, env, work))
    log_etcd(cluster)
    return out


def log_etcd(cluster):
    etcd = cluster.etcd_db_mib()
    if etcd is not None:
        log(f"etcd's database: {etcd:.0f} MiB (the test cluster's quota: 4096 MiB)")


def helm_rows(args, cluster, measured, kubectl, work, tag):
    """A chart of --chart-objects objects, ours (`kubectl sync` of the chart's path: helm
    template, then our apply and record) against `helm install` / `helm upgrade`: a first
    install, an upgrade changing ten objects, an upgrade changing nothing. Each side has
    its own namespace per round, and its release records there."""
    n = args.chart_objects
    helm = os.environ.get("HELM") or str(cluster.bin / "helm")
    repo = chart_repo(work / "chart-repo", n)
    base, changed = work / "chart-base", work / "chart-changed"
    write_tree(base, chart_files(n, 1))
    write_tree(changed, chart_files(n, 2))
    install = Row(f"chart of {n} objects, first install", ">= 3x vs helm install")
    upgrade = Row(f"chart of {n} objects, upgrade changing 10", ">= 5x vs helm upgrade")
    same = Row(f"chart of {n} objects, nothing changed", ">= 10x vs helm upgrade")
    for round_ in range(args.repeat):
        for who in ("ours", "helm") if round_ % 2 == 0 else ("helm", "ours"):
            ns = f"{tag}-h{who[0]}{round_}"
            cluster.kubectl("create", "namespace", ns)
            if who == "ours":
                sync = [kubectl, "sync", "--app", f"chart{round_}", "-n", ns, "--yes", "--wait=false"]
                measured(install, "ours", sync[:2] + ["HEAD~1", "chart"] + sync[2:], "kubectl-gitops/", cwd=repo)
                measured(upgrade, "ours", sync[:2] + ["HEAD", "chart"] + sync[2:], "kubectl-gitops/", cwd=repo)
                measured(same, "ours", sync[:2] + ["HEAD", "chart"] + sync[2:], "kubectl-gitops/", cwd=repo)
            else:
                name = f"chart{round_}"
                measured(install, "helm", [helm, "install", name, str(base), "-n", ns], "Helm/", cwd=work)
                measured(upgrade, "helm", [helm, "upgrade", name, str(changed), "-n", ns], "Helm/", cwd=work)
                measured(same, "helm", [helm, "upgrade", name, str(changed), "-n", ns], "Helm/", cwd=work)
    return [install, upgrade, same]


class ServedDashboard:
    """`kubectl release-history --web ARGS`, running until the `with` block ends."""

    def __init__(self, kubectl, env, args):
        self.command = [kubectl, "release-history", "--web", *args]
        self.env = env

    def __enter__(self):
        self.process = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], 120)
        line = self.process.stdout.readline().strip() if ready else ""
        if not line.startswith("Dashboard: http://"):
            self.__exit__(None, None, None)
            raise SystemExit(f"{' '.join(self.command)} printed no URL: {line!r}")
        self.host, token = line.removeprefix("Dashboard: http://").split("/?token=")
        self.cookie = f"kubectl_gitops_dashboard_{self.host.rsplit(':', 1)[1]}={token}"
        return self

    def __exit__(self, *_):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def get(self, path):
        """GETs `path` with the token's cookie: (seconds to the whole answer, its body)."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection(self.host, timeout=120)
        try:
            connection.request("GET", path, headers={"Host": self.host, "Cookie": self.cookie})
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
        finally:
            connection.close()
        seconds = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status}: {body[:2000]}")
        return seconds, body


def dashboard_rows(args, cluster, env, kubectl, work, tag):
    """The dashboard's answer times, each from a dashboard just started (nothing read yet):
    the overview of many small apps (one namespace each, `-A`), and the page of one app
    of many objects. The overview answers from the release records while the apps'
    checks run after it; the time until every app's state is known is logged."""
    apps, per_app, big = (3, 5, 50) if args.smoke else (100, 20, 1000)
    repo = work / "dashboard-repo"
    files = []
    namespaces = [f"{tag}-d{i}" for i in range(apps)] + [f"{tag}-dbig"]
    for i, ns in enumerate(namespaces):
        name, count = (f"app{i}", per_app) if i < apps else ("big", big)
        files += [(f"{name}/cm{j}.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-{j}\n"
                   f"  namespace: {ns}\ndata:\n  n: \"{j}\"\n") for j in range(count)]
        cluster.kubectl("create", "namespace", ns)
    write_tree(repo, files)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "apps")
    log(f"syncing {apps} apps of {per_app} objects and one of {big} for the dashboard rows")
    for i, ns in enumerate(namespaces):
        name = f"app{i}" if i < apps else "big"
        run([kubectl, "sync", "HEAD", name, "--app", name, "-n", ns, "--yes", "--wait=false"], env, repo)
    overview = Row(f"dashboard: overview of {apps} apps x {per_app} objects, first answer", "< 300 ms")
    app_page = Row(f"dashboard: app page of {big} objects, first answer", "< 500 ms")
    big_page = f"/app?c=0&ns={namespaces[-1]}&app=big&src=kubectl-gitops"
    for _ in range(args.repeat):
        settle(cluster)
        with ServedDashboard(kubectl, env, ["-A"]) as dashboard:
            LOADS.append(os.getloadavg()[0])
            seconds, body = dashboard.get("/")
            missing = [i for i in range(apps) if f">app{i}</a>" not in body]
            if missing:
                raise SystemExit(f"the overview lacks apps {missing}")
            overview.ours.append(seconds)
            log(f"{overview.name}: ours {seconds * 1000:.0f} ms")
            started = time.perf_counter()
            deadline = started + 600
            while "state busy checking" in body:
                if time.perf_counter() > deadline:
                    raise SystemExit("the overview's states were still being checked after 600 s")
                time.sleep(0.1)
                _, body = dashboard.get("/")
            log(f"every app's state known {(time.perf_counter() - started) * 1000:.0f} ms after the first answer")
        settle(cluster)
        with ServedDashboard(kubectl, env, ["-n", namespaces[-1]]) as dashboard:
            LOADS.append(os.getloadavg()[0])
            seconds, body = dashboard.get(big_page)
            if f"big-{big - 1}" not in body:
                raise SystemExit(f"the app page lacks ConfigMap big-{big - 1}")
            app_page.ours.append(seconds)
            log(f"{app_page.name}: ours {seconds * 1000:.0f} ms")
    return [overview, app_page]


def reconcile_rows(args, cluster, env, root, work, tag):
    """The reconciler (`kubectl-sync --reconcile`) following one repository of many small
    apps: every app deployed from a commit that changes all of them (after a first
    deploy, not measured), and one app deployed from a commit that changes it alone, the
    round started by a signed push webhook. Each round has a reconciler just started on a
    repository it has not fetched yet. When an app is deployed is read from the
    reconciler's log line for it, and checked in the cluster after each round."""
    apps, per_app = (5, 3) if args.smoke else (1000, 10)
    ns = f"{tag}-rec"
    cluster.kubectl("create", "namespace", ns)
    repo = work / "reconcile-repo"

    def manifests(rev):
        files = [(".kubectl-gitops.yaml", "apps:\n" + "".join(
            f"- name: app{i}\n  path: apps/app{i}\n  namespace: {ns}\n  wait: false\n" for i in range(apps)))]
        for i in range(apps):
            files += [(f"apps/app{i}/cm{j}.yaml",
                       f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app{i}-{j}\ndata:\n  rev: \"{rev}\"\n")
                      for j in range(per_app)]
        return files

    write_tree(repo, manifests(0))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "apps")
    secret = work / "webhook-secret"
    secret.write_text("bench-secret\n")
    binary = str(root / "plugins" / "kubectl-sync")

    class Reconciler:
        """A reconciler just started; `synced` is each app's last synced commit (short id)."""

        def __init__(self):
            self.synced, self.failed = {}, []
            self.process = subprocess.Popen(
                [binary, "--reconcile", "main", "--repo", f"file://{repo}", "--interval", "1h",
                 "--concurrency", "16", "--leader-namespace", ns, "--leader-lease", "5s",
                 "--listen", "127.0.0.1:0", "--webhook-secret-file", str(secret)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
            ready, _, _ = select.select([self.process.stdout], [], [], 60)
            line = json.loads(self.process.stdout.readline()) if ready else {}
            if line.get("msg") != "started":
                self.process.kill()
                raise SystemExit(f"the reconciler did not start: {line!r}")
            self.address = line["listen"]
            threading.Thread(target=self.read, daemon=True).start()

        def read(self):
            for text in self.process.stdout:
                line = json.loads(text)
                if line.get("msg") == "synced":
                    self.synced[line["app"]] = line.get("commit")
                elif line.get("msg") == "sync failed":
                    self.failed.append(line)

        def until(self, done, what, limit=900):
            deadline = time.perf_counter() + limit
            while not done():
                if self.failed:
                    raise SystemExit(f"the reconciler: a sync failed: {self.failed[0]}")
                if time.perf_counter() > deadline:
                    raise SystemExit(f"the reconciler: {what} after {limit} s")
                time.sleep(0.05)

        def stop(self):
            """Stops it; returns its peak resident memory in MiB."""
            peak = None
            try:
                for status_line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                    if status_line.startswith("VmHWM:"):
                        peak = int(status_line.split()[1]) / 1024
            except OSError:
                pass
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            return peak

    def head():
        return git(repo, "rev-parse", "--short=7", "HEAD").strip()

    def check_cluster(expected):
        values = cluster.kubectl("get", "configmaps", "-n", ns, "-o",
                                 "jsonpath={range .items[*]}{.metadata.name}={.data.rev}{\"\\n\"}{end}").stdout
        found = dict(line.split("=", 1) for line in values.split() if "=" in line)
        wrong = [name for name, rev in expected.items() if found.get(name) != rev]
        if wrong:
            raise SystemExit(f"the reconciler: {len(wrong)} ConfigMaps not as the commit has them: {wrong[:5]}")

    log(f"reconciler: first deploy of {apps} apps of {per_app} objects")
    first = Reconciler()
    commit = head()
    first.until(lambda: sum(1 for c in first.synced.values() if c == commit) >= apps, "not every app deployed")
    first.stop()

    every = Row(f"reconciler: {apps} apps x {per_app} objects, a commit changing all, to every app deployed",
                "<= 60 s")
    one = Row(f"reconciler: one app of {apps} changed, signed webhook to it deployed", "< 2 s")
    changed_app = f"app{apps // 3}"
    for round_number in range(args.repeat):
        rev = round_number + 1
        write_tree(repo, manifests(rev))
        git(repo, "commit", "-qam", f"all apps: rev {rev}")
        commit = head()
        LOADS.append(os.getloadavg()[0])
        cpu = cluster.apiserver_cpu()
        started = time.perf_counter()
        reconciler = Reconciler()
        reconciler.until(lambda: sum(1 for c in reconciler.synced.values() if c == commit) >= apps,
                         "not every app deployed the commit")
        every.ours.append(time.perf_counter() - started)
        if cpu is not None:
            every.ours_cpu.append(cluster.apiserver_cpu() - cpu)
        log(f"{every.name}: ours {every.ours[-1] * 1000:.0f} ms")
        check_cluster({f"app{i}-{j}": str(rev) for i in range(apps) for j in range(per_app)})

        # One app changes; the push tells the reconciler at once (its interval is an hour).
        path = repo / "apps" / changed_app / "cm0.yaml"
        path.write_text(path.read_text().replace(f'rev: "{rev}"', f'rev: "{rev}-one"'))
        git(repo, "commit", "-qam", "one app")
        commit = head()
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        signature = "sha256=" + hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
        LOADS.append(os.getloadavg()[0])
        cpu = cluster.apiserver_cpu()
        started = time.perf_counter()
        connection = http.client.HTTPConnection(reconciler.address, timeout=30)
        connection.request("POST", "/webhook", body=body, headers={
            "X-GitHub-Event": "push", "X-Hub-Signature-256": signature, "Content-Type": "application/json"})
        status = connection.getresponse().status
        connection.close()
        if status >= 300:
            raise SystemExit(f"the webhook answered {status}")
        reconciler.until(lambda: reconciler.synced.get(changed_app) == commit, "the changed app not deployed", 120)
        one.ours.append(time.perf_counter() - started)
        if cpu is not None:
            one.ours_cpu.append(cluster.apiserver_cpu() - cpu)
        log(f"{one.name}: ours {one.ours[-1] * 1000:.0f} ms")
        check_cluster({f"{changed_app}-0": f"{rev}-one"})
        peak = reconciler.stop()
        if peak is not None:
            every.ours_mem.append(peak)
            one.ours_mem.append(peak)
    return [every, one]

def remote_dependencies_row(args, cluster, env, work):
    """A chart whose three dependencies are in an OCI registry (the distribution registry
    the test suite builds, on 127.0.0.1): ours renders it at two revisions from a warm chart
    cache (`diff-git REV..REV`, two renders and a diff); helm templates it twice after
    `helm dependency build` put the dependencies under charts/."""
    per_chart = 20 if args.smoke else 300
    row = Row(f"chart with 3 OCI dependencies ({3 * per_chart} objects), two renders, warm cache",
              "helm template x2 after helm dependency build")
    helm = str(cluster.bin / "helm")
    registry_dir = work / "registry"
    registry_dir.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (registry_dir / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {registry_dir / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    registry = subprocess.Popen([str(cluster.bin / "registry"), "serve", str(registry_dir / "config.yml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    helm_home = work / "helm-home"
    helm_env = dict(env, HELM_CONFIG_HOME=str(helm_home / "config"), HELM_CACHE_HOME=str(helm_home / "cache"),
                    HELM_DATA_HOME=str(helm_home / "data"), HELM_REGISTRY_CONFIG=str(helm_home / "registry.json"),
                    HELM_REPOSITORY_CONFIG=str(helm_home / "repositories.yaml"))
    ours_env = dict(env, HELM=helm, KUBECTL_GITOPS_PLAIN_HTTP="1", XDG_CACHE_HOME=str(work / "chart-cache"))
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the registry did not start")
                time.sleep(0.2)
        packages = work / "packages"
        packages.mkdir()
        for name in ("api", "worker", "cache"):
            chart = work / "subcharts" / name
            write_tree(chart, list({
                "Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: 1.0.0\n",
                "values.yaml": "size: 1\n",
                "templates/configmaps.yaml": (
                    f"{{{{- range $i := until {per_chart} }}}}\n---\napiVersion: v1\nkind: ConfigMap\n"
                    f"metadata:\n  name: {{{{ $.Release.Name }}}}-{name}-{{{{ $i }}}}\n"
                    "data:\n  size: {{ $.Values.size | quote }}\n{{- end }}\n"),
            }.items()))
            subprocess.run([helm, "package", str(chart), "--destination", str(packages)],
                           env=helm_env, check=True, capture_output=True)
            subprocess.run([helm, "push", str(packages / f"{name}-1.0.0.tgz"), f"oci://127.0.0.1:{port}/charts",
                            "--plain-http"], env=helm_env, check=True, capture_output=True)
        repo = work / "deps-repo"
        deps = "".join(f"- name: {name}\n  version: ^1.0.0\n  repository: oci://127.0.0.1:{port}/charts\n"
                       for name in ("api", "worker", "cache"))
        write_tree(repo, [("chart/Chart.yaml", f"apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n{deps}"),
                          ("chart/values.yaml", "api: {size: 1}\n")])
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "platform")
        write_tree(repo, [("chart/values.yaml", "api: {size: 2}\n")])
        git(repo, "commit", "-qam", "bigger api")
        ours = [str(cluster.bin / "kubectl"), "diff-git", "HEAD~1..HEAD", "chart", "-o", "name"]
        run(ours, ours_env, repo, (1,))  # warms the cache: the measured renders fetch nothing
        checkout = work / "deps-checkout"
        shutil.copytree(repo / "chart", checkout)
        subprocess.run([helm, "dependency", "build", str(checkout), "--plain-http"], env=helm_env,
                       check=True, capture_output=True)
        for _ in range(args.repeat):
            seconds, mem = run(ours, ours_env, repo, (1,))
            row.ours.append(seconds); row.ours_mem.append(mem)
            total, peak = 0.0, 0.0
            for values in ("api: {size: 1}\n", "api: {size: 2}\n"):
                (checkout / "values.yaml").write_text(values)
                seconds, mem = run([helm, "template", "platform", str(checkout)], helm_env, work)
                total, peak = total + seconds, max(peak, mem)
            row.base.append(total); row.base_mem.append(peak)
    finally:
        registry.terminate()
        registry.wait()
    return row


def machine():
    """Cores, memory, CPU model, kernel: what the numbers depend on."""
    cpu, mem_kib = "unknown", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} cores "
            f"({cpu}), {mem_kib / 1024 / 1024:.0f} GiB RAM; {rustc}")


def per_object(rows):
    """Our time per object in the sync from empty at each size against the smallest (the
    target: at most 1.2 times), as a line for the report; empty with one size."""
    sized = sorted((r.objects, r.median(r.ours)) for r in rows if r.objects and r.ours)
    if len(sized) < 2:
        return ""
    (small, small_s), parts = sized[0], []
    for n, seconds in sized[1:]:
        ratio = (seconds / n) / (small_s / small)
        parts.append(f"{seconds / n * 1000:.2f} ms at {n} against {small_s / small * 1000:.2f} ms at "
                     f"{small}: {ratio:.2f} times (target <= 1.2)")
    return "\nSync from empty, our time per object: " + "; ".join(parts) + ".\n"


def write_report(args, rows):
    """BENCHMARKS.md: the table and the machine; a `## Notes` section already in the file is
    kept, since it explains the numbers and is written by hand."""
    target = Path(args.write)
    notes = ""
    if target.exists():
        old = target.read_text()
        if "\n## Notes" in old:
            notes = old[old.index("\n## Notes"):]
    loads = sorted(LOADS) or [0.0]
    text = f"""# Benchmarks

The latest run of `python3 bench/bench.py --objects {",".join(map(str, args.objects))}` (N={" and ".join(map(str, sorted(args.objects)))}, {args.big} objects for the no-cluster
rows, {args.repeat} rounds, seed {args.seed}, {args.namespaces} namespaces), ours and the real
kubectl alternately on the same local control plane (the project's test cluster: etcd,
kube-apiserver, controller-manager, scheduler and kwok nodes on 127.0.0.1), warmed up first
by an unmeasured apply of the same objects; in the sync rows each goes first in every other
round. Medians; requests are one round's, by verb, from the API server's audit log (by
User-Agent); API server CPU is the CPU time the kube-apiserver process used while the
command ran (median; it includes the server's own background work, about 0.1 s per second
here); peak memory is the command's own maximum resident set (GNU time's).

Before each measured command the run waits until the controllers have made every write
the objects created before it call for (ReplicaSets, Endpoints, pods: no write of theirs
for 2 s), so no command runs behind an earlier round's backlog; the wait was median
{statistics.median(SETTLED or [0.0]):.0f} s, at most {max(SETTLED or [0.0]):.0f} s.

Machine: {machine()}.
1-minute load average before each command: min {loads[0]:.1f}, median {statistics.median(loads):.1f},
max {loads[-1]:.1f} (the control plane runs on the same cores).
Date: {time.strftime('%Y-%m-%d')}.

{table(rows)}
{per_object(rows)}
Reproduce: `python3 bench/bench.py` (builds the release binaries with LTO, starts a control
plane, then takes several minutes); `python3 bench/bench.py --smoke` is the small version CI
runs; `--help` lists the knobs (objects, rounds, seed, an already running control plane).
"""
    target.write_text(text + notes)
    log(f"wrote {target}")


if __name__ == "__main__":
    main()
