#!/usr/bin/env bash
# Builds the plugins and packs one release archive per plugin and platform:
#   dist/kubectl-gitops-<plugin>-v<version>-<os>-<arch>.tar.gz
# holding the plugin binary, its kubectl_complete-* script and LICENSE.
#
#   scripts/release-archives.sh [--profile release|dev] [--target TRIPLE] [--out DIR]
#
# The host platform needs nothing more. Cross targets need their Rust target and a linker:
#   x86_64-unknown-linux-gnu   linux/amd64
#   aarch64-unknown-linux-gnu  linux/arm64   rustup target add aarch64-unknown-linux-gnu;
#                                            apt-get install gcc-aarch64-linux-gnu; and
#                                            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
#   x86_64-apple-darwin        darwin/amd64  on macOS: rustup target add x86_64-apple-darwin
#   aarch64-apple-darwin       darwin/arm64  on macOS: rustup target add aarch64-apple-darwin
# Then scripts/krew-manifests.sh turns the archives into krew manifests.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=release target="" out="$root/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--profile release|dev] [--target TRIPLE] [--out DIR]" >&2; exit 2 ;;
  esac
done
host=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$target" ] || target=$host
case "$target" in
  x86_64-*linux*) platform=linux-amd64 ;;
  aarch64-*linux*) platform=linux-arm64 ;;
  x86_64-apple-darwin) platform=darwin-amd64 ;;
  aarch64-apple-darwin) platform=darwin-arm64 ;;
  *) echo "unsupported target $target" >&2; exit 2 ;;
esac
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")

cd "$root"
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
# The host's binaries are the ordinary build (no second copy under target/<triple>/).
if [ "$target" = "$host" ]; then
  cargo build --quiet --profile "$profile" --bins
  bins="target/$dir"
else
  cargo build --quiet --profile "$profile" --target "$target" --bins
  bins="target/$target/$dir"
fi
mkdir -p "$out"
grep -v '^#' krew-manifests/plugins.tsv | while IFS=$'\t' read -r name binary _ _; do
  stage=$(mktemp -d)
  cp "$bins/$binary" "$stage/"
  cp "plugins/completion/kubectl_complete-${binary#kubectl-}" "$stage/"
  cp LICENSE "$stage/"
  archive="$out/kubectl-gitops-$name-v$version-$platform.tar.gz"
  # Reproducible: fixed order, owner and times.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' \
    -C "$stage" -czf "$archive" .
  rm -rf "$stage"
  echo "$archive"
done
