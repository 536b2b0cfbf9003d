#!/usr/bin/env bash
# Starts and stops a real Kubernetes control plane on 127.0.0.1 for the test suite:
# etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler and kwok with
# fake nodes, from the binaries build.sh produces.
#
#   cluster.sh up STATE_DIR      start everything; writes STATE_DIR/env (sourceable)
#   cluster.sh down STATE_DIR    stop everything started there, and check nothing is left
#   cluster.sh stop-apiserver STATE_DIR / start-apiserver STATE_DIR   for fault tests
#
# STATE_DIR/env exports:
#   KUBECTL_GITOPS_TEST_KUBECONFIG         admin (system:masters)
#   KUBECTL_GITOPS_TEST_VIEWER_KUBECONFIG  user "viewer", bound to the read-only "view" ClusterRole
#   KUBECTL_GITOPS_TEST_BIN                the directory holding kubectl and the servers
#   KUBECTL_GITOPS_TEST_STATE              STATE_DIR
#   HELM                                   the helm build.sh built (the library and plugins read $HELM)
# KUBECTL_GITOPS_APISERVER_ARGS (at `up`): extra kube-apiserver flags, kept for restarts
# (fault tests start private control planes with e.g. --max-requests-inflight).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a component in the background, its output in STATE/logs/NAME.log, its pid in STATE/pids/NAME.
start() {
  local name=$1; shift
  mkdir -p "$state/logs" "$state/pids"
  # setsid: a component gets its own process group, so stopping it takes its children too.
  setsid "$@" >>"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/pids/$name"
}

stop() {
  local name=$1 pidfile="$state/pids/$1"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  local pidfile="$state/pids/$what"
  until "$@" >/dev/null 2>&1; do
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      say "$what exited; last log lines:"
      tail -n 30 "$state/logs/$what.log" >&2 2>/dev/null || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      say "$what did not come up within ${timeout}s; last log lines:"
      tail -n 30 "$state/logs/$what.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

make_certs() {
  local pki=$state/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kubectl-gitops-test-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  cat >"$pki/serving.cnf" <<EOF
[req]
distinguished_name = dn
[dn]
[ext]
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes.default.svc
keyUsage = digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
EOF
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/serving.key" \
    -out "$pki/serving.csr" 2>/dev/null
  openssl x509 -req -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/serving.cnf" -extensions ext -out "$pki/serving.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

write_kubeconfig() {
  local file=$1 user=$2 token=$3
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority: $state/pki/ca.crt
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user@test
  context:
    cluster: test
    user: $user
current-context: $user@test
EOF
}

# apiserver_args is split into words on purpose: it holds several flags.
# shellcheck disable=SC2086
start_apiserver() {
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$apiserver_port" \
    --tls-cert-file="$state/pki/serving.crt" --tls-private-key-file="$state/pki/serving.key" \
    --client-ca-file="$state/pki/ca.crt" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=RBAC \
    --token-auth-file="$state/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$state/pki/sa.pub" \
    --service-account-signing-key-file="$state/pki/sa.key" \
    --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --audit-log-path="$state/logs/audit.log" --audit-policy-file="$state/audit-policy.yaml" \
    --audit-log-maxsize=200 --audit-log-maxbackup=1 \
    --enable-priority-and-fairness=false \
    ${apiserver_args:-}
}

apiserver_ready() {
  curl -fsS --cacert "$state/pki/ca.crt" -H "Authorization: Bearer $admin_token" \
    "https://127.0.0.1:$apiserver_port/readyz"
}

load_state() {
  [ -f "$state/ports" ] || die "no control plane state in $state"
  # shellcheck disable=SC1091
  . "$state/ports"
}

cmd_up() {
  # `up` starts a new cluster: a control plane still running here is refused, and the
  # data of a stopped one is dropped (its RBAC objects would clash with the new ones).
  if [ -f "$state/ports" ] && (load_state && apiserver_ready) >/dev/null 2>&1; then
    die "a control plane is already running in $state (stop it with: $0 down $state)"
  fi
  rm -rf "$state/etcd"
  bin=$(bash "$here/build.sh")
  mkdir -p "$state"
  # A start that fails half-way stops what it started.
  trap 'rc=$?; if [ $rc -ne 0 ]; then cmd_down || true; fi' EXIT
  etcd_port=$(free_port); apiserver_port=$(free_port)
  admin_token=$(openssl rand -hex 16); viewer_token=$(openssl rand -hex 16)
  printf 'bin=%s\netcd_port=%s\napiserver_port=%s\nadmin_token=%s\n' \
    "$bin" "$etcd_port" "$apiserver_port" "$admin_token" >"$state/ports"
  apiserver_args=${KUBECTL_GITOPS_APISERVER_ARGS:-}
  printf 'apiserver_args=%q\n' "$apiserver_args" >>"$state/ports"
  make_certs
  cat >"$state/tokens.csv" <<EOF
$admin_token,admin,admin-uid,"system:masters"
$viewer_token,viewer,viewer-uid,"viewers"
EOF
  # Metadata of every request: benchmarks and tests count API calls from it.
  cat >"$state/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
EOF
  say "starting etcd on 127.0.0.1:$etcd_port"
  start etcd "$bin/etcd" --data-dir="$state/etcd" --name=test \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$(free_port)" --initial-cluster-state=new \
    --unsafe-no-fsync --quota-backend-bytes=4294967296 --log-level=warn
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  say "starting kube-apiserver on https://127.0.0.1:$apiserver_port"
  start_apiserver
  wait_for kube-apiserver 90 apiserver_ready

  write_kubeconfig "$state/admin.kubeconfig" admin "$admin_token"
  write_kubeconfig "$state/viewer.kubeconfig" viewer "$viewer_token"
  local kubectl=("$bin/kubectl" --kubeconfig="$state/admin.kubeconfig")
  "${kubectl[@]}" create clusterrolebinding viewers-view --clusterrole=view --group=viewers >/dev/null

  say "starting kube-controller-manager, kube-scheduler and kwok"
  # The controllers' own client limit (20 requests a second by default) left them minutes
  # behind thousands of new Deployments and Services: their catching up then ran under
  # whatever came next. Here they go as fast as the API server answers.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$state/admin.kubeconfig" --bind-address=127.0.0.1 --secure-port="$(free_port)" \
    --service-account-private-key-file="$state/pki/sa.key" --root-ca-file="$state/pki/ca.crt" \
    --use-service-account-credentials=false --leader-elect=false \
    --kube-api-qps=200 --kube-api-burst=400 \
    --controllers='*,-node-ipam-controller,-persistentvolume-attach-detach-controller'
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$state/admin.kubeconfig" --bind-address=127.0.0.1 --secure-port="$(free_port)" \
    --leader-elect=false
  # kwok's own stages, then the project's (tests/cluster/kwok-stages/README.md): read
  # from the checkout at every start, so they never go stale in the binary cache.
  {
    cat "$bin/kwok-upstream-stages.yaml"
    for f in "$here"/kwok-stages/*.yaml; do printf -- '---\n'; cat "$f"; done
  } >"$state/kwok.yaml"
  start kwok "$bin/kwok" --kubeconfig="$state/admin.kubeconfig" --config="$state/kwok.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 --cidr=10.244.0.0/16 --server-address="127.0.0.1:$(free_port)" \
    --node-lease-duration-seconds=40

  for i in 0 1; do
    "${kubectl[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: fake, kubeProxyVersion: fake}
EOF
  done
  # The service-account controller must have made the default account before pods can be created.
  wait_for kube-controller-manager 60 "${kubectl[@]}" get serviceaccount default -n default
  wait_for kwok 60 bash -c "'$bin/kubectl' --kubeconfig='$state/admin.kubeconfig' get nodes --no-headers | grep -c ' Ready ' | grep -qx 2"

  cat >"$state/env" <<EOF
export KUBECTL_GITOPS_TEST_KUBECONFIG=$state/admin.kubeconfig
export KUBECTL_GITOPS_TEST_VIEWER_KUBECONFIG=$state/viewer.kubeconfig
export KUBECTL_GITOPS_TEST_BIN=$bin
export KUBECTL_GITOPS_TEST_STATE=$state
export HELM=$bin/helm
export KUBECTL=$bin/kubectl
EOF
  say "control plane ready (state in $state)"
}

cmd_down() {
  [ -d "$state/pids" ] || return 0
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$name"; done
  # Anything still running from this state dir is a leak the tests must hear about.
  if pgrep -f -- "$state/" >/dev/null; then
    say "processes left behind:"; pgrep -af -- "$state/" >&2
    pkill -KILL -f -- "$state/" || true
    exit 1
  fi
  say "control plane stopped"
}

[ $# -eq 2 ] || { echo "usage: $0 up|down|stop-apiserver|start-apiserver STATE_DIR" >&2; exit 2; }
state=$(mkdir -p "$2" && cd "$2" && pwd)
case "$1" in
  up) cmd_up ;;
  down) cmd_down ;;
  stop-apiserver) stop kube-apiserver ;;
  start-apiserver) load_state; start_apiserver; wait_for kube-apiserver 90 apiserver_ready ;;
  *) echo "unknown command $1" >&2; exit 2 ;;
esac
