#!/usr/bin/env bash
# One command from a fresh clone to the plugins at work: sets the machine up, builds the
# plugins, uses your current cluster if kubectl reaches one (or starts the local test
# control plane if not), and runs the plugins on examples/guestbook.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "setting up (cached after the first run)"
bash scripts/setup.sh
bin=$(bash tests/cluster/build.sh)
say "building the plugins"
cargo build --quiet --bins
# Only the plugin binaries (target/debug also holds cargo's *.d files, which kubectl would list).
plugins="$root/target/kubectl-plugins"
mkdir -p "$plugins"
for p in "$root"/target/debug/kubectl-*; do
  [ -x "$p" ] && [ -f "$p" ] && ln -sf "$p" "$plugins/"
done
export PATH="$plugins:$bin:$PATH"

if [ -z "${KUBECTL_GITOPS_DEMO_LOCAL:-}" ] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  say "using your current cluster: context $(kubectl config current-context)"
else
  state=${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-gitops/demo-cluster
  if [ -f "$state/env" ] && KUBECONFIG="$state/admin.kubeconfig" kubectl version --request-timeout=3s >/dev/null 2>&1; then
    say "reusing the local control plane in $state"
  else
    say "no cluster reachable: starting a local control plane in $state"
    bash tests/cluster/cluster.sh down "$state" >/dev/null 2>&1 || true
    rm -rf "$state"
    bash tests/cluster/cluster.sh up "$state"
  fi
  export KUBECONFIG="$state/admin.kubeconfig"
  echo "(stop it with: bash tests/cluster/cluster.sh down $state)"
fi

ns=guestbook-demo
app=examples/guestbook/base
say "kubectl plugin list"
kubectl plugin list 2>/dev/null | grep kubectl- || true

say "kubectl diff-git HEAD $app -n $ns   (what a sync would change)"
kubectl diff-git HEAD "$app" -n "$ns" --color=always || [ $? -eq 1 ]

say "kubectl sync HEAD $app --app guestbook -n $ns --prune --yes   (apply, wait for health, record release)"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl sync HEAD "$app" --app guestbook -n "$ns" --prune --yes --timeout 3m --color=always

say "diffing again: no differences (exit 0)"
kubectl diff-git HEAD "$app" -n "$ns"

say "syncing again changes nothing, and is recorded as a new release"
kubectl sync HEAD "$app" --app guestbook -n "$ns" --prune --yes

say "someone scales the frontend by hand: kubectl drift says what changed and who did it (exit 1)"
kubectl scale deployment/frontend -n "$ns" --replicas=4
kubectl drift guestbook -n "$ns" --color=always || [ $? -eq 1 ]

say "kubectl drift --heal puts the release back and records a release saying so"
kubectl drift guestbook -n "$ns" --heal --timeout 3m --color=always

say "in sync again (exit 0)"
kubectl drift guestbook -n "$ns"

say "kubectl release-history -n $ns   (every app and its latest release)"
kubectl release-history -n "$ns" --color=always

say "kubectl release-history guestbook -n $ns   (the app's releases, newest first)"
kubectl release-history guestbook -n "$ns" --color=always

revs=($(kubectl release-history guestbook -n "$ns" --max 2 -o yaml | sed -n 's/^  revision: //p'))
say "kubectl release-history guestbook ${revs[0]} -n $ns   (one release: its fields and objects)"
kubectl release-history guestbook "${revs[0]}" -n "$ns" --color=always
if [ "${#revs[@]}" -eq 2 ]; then
  say "kubectl release-history guestbook ${revs[1]}..${revs[0]} -n $ns   (what changed between two releases)"
  kubectl release-history guestbook "${revs[1]}..${revs[0]}" -n "$ns" --color=always
fi

say "the staging overlay against the same namespace, as a pull-request comment"
kubectl diff-git HEAD examples/guestbook/overlays/staging -n "$ns" -o markdown || [ $? -eq 1 ]

say "what changed between two revisions, no cluster needed"
repo=$(mktemp -d)
cp -r "$app" "$repo/app"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=demo -c user.email=demo@example.com add -A
git -C "$repo" -c user.name=demo -c user.email=demo@example.com commit -qm "guestbook v5"
sed -i 's/guestbook-frontend:v5/guestbook-frontend:v6/' "$repo/app/frontend.yaml"
git -C "$repo" -c user.name=demo -c user.email=demo@example.com commit -qam "frontend v6"
(cd "$repo" && kubectl diff-git HEAD~1..HEAD app -n "$ns" --color=always) || [ $? -eq 1 ]
rm -rf "$repo"
echo "done."
