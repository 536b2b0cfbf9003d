#!/usr/bin/env bash
# Installs what building the release archives for every krew platform, and the
# reconciler's container image (scripts/image.sh), need, pinned and cached by version like
# the test control plane:
#   - the Rust standard library of each cross target (rustup), x86_64 musl for the image,
#   - zig and cargo-zigbuild (PyPI wheels, in a venv), the linker for every target: it
#     links against an old glibc on Linux (so one binary runs on any distribution since
#     glibc 2.17) and cross-links macOS without a Mac,
#   - qemu-user and the arm64 C library (Debian), so the tests can run the linux/arm64
#     binary here.
#
# Prints the directory holding `cargo-zigbuild` on stdout; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/cluster/versions.env
. "$root/tests/cluster/versions.env"
say() { printf '[cross-tools] %s\n' "$*" >&2; }

cache_root=${KUBECTL_GITOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-gitops}
venv="$cache_root/zig-${ZIG_VERSION}_cargo-zigbuild-${CARGO_ZIGBUILD_VERSION}/venv"

targets=(aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin x86_64-unknown-linux-musl)
if command -v rustup >/dev/null; then
  installed=$(rustup target list --installed)
  for target in "${targets[@]}"; do
    grep -qx "$target" <<<"$installed" || { say "adding the Rust target $target"; rustup target add "$target" >&2; }
  done
else
  say "error: rustup is needed to add the Rust targets ${targets[*]}"; exit 1
fi

if [ ! -x "$venv/bin/cargo-zigbuild" ] || [ ! -x "$venv/bin/python-zig" ]; then
  say "installing zig $ZIG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION (PyPI)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "ziglang==$ZIG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
fi

if ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || ! command -v readelf >/dev/null; then
  say "installing qemu-user, the arm64 C library and binutils (Debian)"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    qemu-user libc6-arm64-cross binutils >&2
fi
echo "$venv/bin"
