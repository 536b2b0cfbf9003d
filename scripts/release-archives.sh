#!/usr/bin/env bash
# Builds the plugins and packs one release archive per plugin and platform:
#   dist/kubectl-gitops-<plugin>-v<version>-<os>-<arch>.tar.gz
# holding the plugin binary, its kubectl_complete-* script and LICENSE.
#
#   scripts/release-archives.sh [--profile release|dev] [--target TRIPLE]... [--all] [--out DIR]
#
# Without --target: the host platform, built by plain cargo (what the tests install).
# --all: the four krew platforms, each built with zig as the linker (scripts/cross-tools.sh
# installs it), which is what a release publishes:
#   x86_64-unknown-linux-gnu   linux/amd64   glibc 2.17 or newer
#   aarch64-unknown-linux-gnu  linux/arm64   glibc 2.17 or newer
#   x86_64-apple-darwin        darwin/amd64  macOS 11 or newer
#   aarch64-apple-darwin       darwin/arm64  macOS 11 or newer (ad-hoc signed)
# macOS binaries link against text stubs of the system frameworks they use
# (scripts/macos-frameworks.txt), so no macOS SDK is needed.
# Then scripts/krew-manifests.sh turns the archives into krew manifests.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
krew_targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin)
usage="usage: $0 [--profile release|dev] [--target TRIPLE]... [--all] [--out DIR]"
profile=release out="$root/dist" targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --all) targets+=("${krew_targets[@]}"); shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
say() { printf '[release] %s\n' "$*" >&2; }
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
cd "$root"
mkdir -p "$out"

platform_of() {
  case "$1" in
    x86_64-unknown-linux-gnu) echo linux-amd64 ;;
    aarch64-unknown-linux-gnu) echo linux-arm64 ;;
    x86_64-apple-darwin) echo darwin-amd64 ;;
    aarch64-apple-darwin) echo darwin-arm64 ;;
    *) return 1 ;;
  esac
}

# A directory that looks like a macOS SDK to the linker: one text stub per framework.
macos_sdk() {
  local sdk=$1 name symbols
  grep -v '^#' "$root/scripts/macos-frameworks.txt" | while read -r name symbols; do
    [ -n "$name" ] || continue
    local fw="$sdk/System/Library/Frameworks/$name.framework"
    mkdir -p "$fw"
    cat >"$fw/$name.tbd" <<EOF
--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '/System/Library/Frameworks/$name.framework/Versions/A/$name'
exports:
  - targets:         [ x86_64-macos, arm64-macos ]
    symbols:         [ ${symbols// /, } ]
...
EOF
  done
}

# Builds every binary for one cross target with zig; prints the directory holding them.
# Needs $zig_bin and $sdk (set up once, below).
build_cross() {
  local target=$1 zig_target=$1
  case "$target" in
    *-linux-gnu) zig_target="$target.2.17" ;;
  esac
  # cargo-zigbuild finds zig in the venv (python -m ziglang).
  PATH="$zig_bin:$PATH" SDKROOT="$sdk" MACOSX_DEPLOYMENT_TARGET=11.0 \
    cargo zigbuild --quiet --profile "$profile" --target "$zig_target" --bins >&2
  echo "target/$target/$dir"
}

pack() {
  local bins=$1 platform=$2
  grep -v '^#' krew-manifests/plugins.tsv | while IFS=$'\t' read -r name binary _ _; do
    local archive="$out/kubectl-gitops-$name-v$version-$platform.tar.gz"
    # Reproducible: fixed owner and times. The three files only, each from where it is,
    # no directory entry: extracting into a directory must not change that directory's mode.
    tar --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' -cf - \
      -C "$bins" "$binary" -C "$root/plugins/completion" "kubectl_complete-${binary#kubectl-}" \
      -C "$root" LICENSE | gzip -n >"$archive"
    echo "$archive"
  done
}

if [ ${#targets[@]} -eq 0 ]; then
  host=$(rustc -vV | sed -n 's/^host: //p')
  platform=$(platform_of "$host") || { echo "unsupported host $host" >&2; exit 2; }
  # The host's binaries are the ordinary build (no second copy under target/<triple>/).
  cargo build --quiet --profile "$profile" --bins
  pack "target/$dir" "$platform"
  exit 0
fi
for target in "${targets[@]}"; do
  platform_of "$target" >/dev/null || { echo "unsupported target $target (one of: ${krew_targets[*]})" >&2; exit 2; }
done
zig_bin=$(bash "$root/scripts/cross-tools.sh")
sdk=$(mktemp -d)
trap 'rm -rf "$sdk"' EXIT
macos_sdk "$sdk"
for target in "${targets[@]}"; do
  say "building $target ($profile)"
  pack "$(build_cross "$target")" "$(platform_of "$target")"
done
