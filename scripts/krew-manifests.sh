#!/usr/bin/env bash
# Generates one krew manifest per plugin from krew-manifests/template.yaml and the
# release archives in DIST (made by scripts/release-archives.sh): the version and every
# sha256 come from the archives themselves, so they cannot drift. It also writes the
# archives' SHA256SUMS beside the manifests.
#
#   scripts/krew-manifests.sh DIST [--out DIR] [--url-base URL]
#   scripts/krew-manifests.sh --sums SHA256SUMS [--out DIR] [--url-base URL]
#
# --sums regenerates the manifests from a release's checksum file instead of its archives
# (the tests check that the committed manifests are exactly that).
# --url-base is where the archives are published (default: the repository's releases).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage="usage: $0 DIST | --sums SHA256SUMS [--out DIR] [--url-base URL]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
dist="" sums=""
if [ "$1" = --sums ]; then
  [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
  sums=$2; shift 2
  [ -f "$sums" ] || { echo "no checksum file $sums" >&2; exit 2; }
else
  dist=$(cd "$1" && pwd); shift
fi
out="$root/krew-manifests"
repo=$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' "$root/Cargo.toml")
url_base="$repo/releases/download"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --url-base) url_base=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
mkdir -p "$out"

# "<sha256>  <archive file name>" for every archive of this version, sorted by name.
checksums=$(
  if [ -n "$sums" ]; then
    grep -E "^[0-9a-f]{64}  kubectl-gitops-.*-v$version-[a-z]+-[a-z0-9]+\.tar\.gz$" "$sums" || true
  else
    for archive in "$dist"/kubectl-gitops-*-v"$version"-*.tar.gz; do
      [ -e "$archive" ] || continue
      echo "$(sha256sum "$archive" | cut -d' ' -f1)  $(basename "$archive")"
    done
  fi | sort -k2
)

grep -v '^#' "$root/krew-manifests/plugins.tsv" | while IFS=$'\t' read -r name binary short description; do
  platforms=""
  while read -r sha file; do
    [ -n "$file" ] || continue
    platform=${file#kubectl-gitops-"$name"-v"$version"-}
    [ "$platform" != "$file" ] || continue
    platform=${platform%.tar.gz}
    os=${platform%-*}; arch=${platform#*-}
    platforms+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $url_base/v$version/$file
    sha256: $sha
    bin: $binary
"
  done <<<"$checksums"
  if [ -z "$platforms" ]; then
    echo "no archive for $name v$version in ${dist:-$sums}" >&2
    exit 1
  fi
  python3 - "$root/krew-manifests/template.yaml" "$out/$name.yaml" <<PY
import sys
text = "".join(l for l in open(sys.argv[1]).readlines() if not l.startswith("##"))
for key, value in {
    "@NAME@": "$name", "@VERSION@": "$version", "@HOMEPAGE@": "$repo",
    "@SHORT@": "$short", "@BIN_SUFFIX@": "${binary#kubectl-}",
    "@DESCRIPTION@": "    " + """$description""",
    "@PLATFORMS@": """$platforms""".rstrip("\n"),
}.items():
    text = text.replace(key, value)
open(sys.argv[2], "w").write(text)
PY
  echo "$out/$name.yaml"
done
if [ -n "$dist" ]; then
  echo "$checksums" >"$out/SHA256SUMS"
  echo "$out/SHA256SUMS"
fi
