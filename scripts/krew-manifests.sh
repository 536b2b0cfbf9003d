#!/usr/bin/env bash
# Generates one krew manifest per plugin from krew-manifests/template.yaml and the
# release archives in DIST (made by scripts/release-archives.sh): the version and every
# sha256 come from the archives themselves, so they cannot drift.
#
#   scripts/krew-manifests.sh DIST [--out DIR] [--url-base URL]
#
# --url-base is where the archives are published (default: the repository's releases).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 DIST [--out DIR] [--url-base URL]" >&2; exit 2; }
dist=$(cd "$1" && pwd); shift
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
grep -v '^#' "$root/krew-manifests/plugins.tsv" | while IFS=$'\t' read -r name binary short description; do
  platforms=""
  for archive in "$dist"/kubectl-gitops-"$name"-v"$version"-*.tar.gz; do
    [ -e "$archive" ] || continue
    platform=${archive##*-v"$version"-}; platform=${platform%.tar.gz}
    os=${platform%-*}; arch=${platform#*-}
    sha=$(sha256sum "$archive" | cut -d' ' -f1)
    platforms+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $url_base/v$version/$(basename "$archive")
    sha256: $sha
    bin: $binary
"
  done
  if [ -z "$platforms" ]; then
    echo "no archive for $name v$version in $dist" >&2
    exit 1
  fi
  python3 - "$root/krew-manifests/template.yaml" "$out/$name.yaml" <<PY
import sys
text = open(sys.argv[1]).read()
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
