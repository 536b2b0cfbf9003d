#!/usr/bin/env bash
# Builds the in-cluster reconciler's container image (`kubectl-sync --reconcile`, deployed
# by deploy/) without a Docker daemon, reproducibly: two builds of one checkout on one
# machine give the same digest.
#
#   scripts/image.sh [--profile release|dev] [--out DIR] [--push HOST[:PORT]/REPO[:TAG]]
#                    [--plain-http] [--pin] [--deploy DIR]
#
#   1. kubectl-sync, static: x86_64-unknown-linux-musl, linked by zig (scripts/cross-tools.sh
#      installs it), with every build path remapped (--remap-path-prefix, and
#      -ffile-prefix-map for the C dependencies) so none enters the binary. Its target
#      directory is kept under the project's cache directory, so a second build of an
#      unchanged checkout takes seconds, from any clone.
#   2. A base layer made of this machine's Debian packages: the CA bundle, git with its
#      http(s) helper, the ssh client, the shared libraries they load (ldd) and the dynamic
#      loader; /etc/passwd and /etc/group with the user 65532; /tmp. Nothing else.
#   3. The two layers as tars written deterministically (names sorted, mtime 0, owner and
#      group 0, numeric), assembled by regctl (built from its Go module by
#      tests/cluster/build.sh, pinned in tests/cluster/versions.env) into an OCI image
#      layout: config created at the epoch, entrypoint /kubectl-sync, user 65532,
#      XDG_CACHE_HOME=/var/cache/kubectl-gitops.
#
# --out DIR         the OCI image layout (default dist/image), tagged v<version>
# --push REF        push to HOST[:PORT]/REPO (tag v<version> unless REF names one); the
#                   registry's credentials are read from ~/.docker/config.json
# --plain-http      the registry speaks HTTP, not HTTPS (a local test registry)
# --pin             point DIR/deployment.yaml (--deploy, default deploy/) at the image by
#                   digest: the pushed repository, else the repository it names already
#
# Prints the image digest (sha256:...) on stdout, then with --push the pushed reference
# (HOST/REPO@sha256:...); progress goes to stderr.
set -euo pipefail
umask 022
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/cluster/versions.env
. "$root/tests/cluster/versions.env"
say() { printf '[image] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage="usage: $0 [--profile release|dev] [--out DIR] [--push HOST[:PORT]/REPO[:TAG]] [--plain-http] [--pin] [--deploy DIR]"
profile=release out="$root/dist/image" push="" plain_http=false pin=false deploy="$root/deploy"
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --push) push=$2; shift 2 ;;
    --plain-http) plain_http=true; shift ;;
    --pin) pin=true; shift ;;
    --deploy) deploy=$2; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
case "$profile" in release | dev) ;; *) echo "$usage" >&2; exit 2 ;; esac

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
source_url=$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' "$root/Cargo.toml")
tag="v$version"
epoch=1970-01-01T00:00:00Z
cache_root=${KUBECTL_GITOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-gitops}
target=x86_64-unknown-linux-musl
target_dir=${KUBECTL_GITOPS_IMAGE_TARGET_DIR:-$cache_root/image-target}
cargo_home=${CARGO_HOME:-$HOME/.cargo}

zig_bin=$(bash "$root/scripts/cross-tools.sh")
regctl="$(bash "$root/tests/cluster/build.sh" regctl)/regctl"
work=$(mktemp -d "${TMPDIR:-/tmp}/kubectl-gitops-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. The static binary. Paths are remapped from the most general to the most specific
# (the last matching prefix wins): the cargo home (dependencies' sources), the checkout,
# the target directory (generated code). Target-specific flags leave the host's build
# scripts as the ordinary build has them.
build_binary() {
  local maps=("$cargo_home=/cargo" "$root=/src" "$target_dir=/target") map
  local rustflags="-C strip=symbols" cflags=""
  for map in "${maps[@]}"; do
    case "$map" in *' '*) die "a path with a space cannot be remapped: $map" ;; esac
    rustflags+=" --remap-path-prefix=$map"
    cflags+=" -ffile-prefix-map=$map"
  done
  say "building kubectl-sync for $target ($profile) in $target_dir"
  (
    cd "$root"
    unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
    export CARGO_TARGET_DIR="$target_dir"
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$rustflags"
    export CFLAGS_x86_64_unknown_linux_musl="$cflags"
    PATH="$zig_bin:$PATH" cargo zigbuild --locked --profile "$profile" --target "$target" \
      -p kubectl-sync --bin kubectl-sync >&2
  )
  local dir; dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
  bin="$target_dir/$target/$dir/kubectl-sync"
  local headers dynamic
  headers=$(readelf -lW "$bin") dynamic=$(readelf -dW "$bin")
  if grep -q 'program interpreter' <<<"$headers"; then die "$bin is not static (it names a program interpreter)"; fi
  if grep -q '(NEEDED)' <<<"$dynamic"; then die "$bin is not static (it needs shared libraries)"; fi
  # The checkout and the target directory must not be in it. (The cargo home may be:
  # a proc macro of the age crate embeds its translations' directory as a string, which
  # no remapping reaches; it is the same for every build on a machine.)
  for map in "${maps[@]:1}"; do
    if grep -qF "${map%=*}" "$bin"; then die "$bin holds the build path ${map%=*}"; fi
  done
}

# 2. The base layer's tree. Every file is copied as its content (symlinks followed),
# under the directory it resolves to; the git helpers keep git's own names for them.
stage_base() {
  local base=$1
  local programs=(/usr/bin/git /usr/lib/git-core/git-remote-http /usr/bin/ssh)
  local file
  for file in "${programs[@]}" /etc/ssl/certs/ca-certificates.crt; do
    [ -e "$file" ] || die "$file is missing: run scripts/setup.sh (it installs git, openssh-client, ca-certificates)"
  done
  mkdir -p "$base/etc/ssl/certs" "$base/usr/bin" "$base/usr/lib/git-core" "$base/tmp"
  cp -L /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/"
  cp -L /usr/bin/git /usr/bin/ssh "$base/usr/bin/"
  cp -L /usr/lib/git-core/git-remote-http "$base/usr/lib/git-core/"
  # git runs its helpers from its exec path: itself for built-in commands, git-remote-https
  # for https URLs (the same program as git-remote-http).
  ln -s ../../bin/git "$base/usr/lib/git-core/git"
  ln -s git-remote-http "$base/usr/lib/git-core/git-remote-https"

  local listing="" program
  for program in "${programs[@]}"; do listing+=$(ldd "$program")$'\n'; done
  if grep -q 'not found' <<<"$listing"; then die "a library is missing: $(grep 'not found' <<<"$listing")"; fi
  local lib dest
  # `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` and the loader,
  # `/lib64/ld-linux-x86-64.so.2 (0x...)`; linux-vdso is the kernel's.
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing" | LC_ALL=C sort -u |
    while read -r lib; do
      dest="$(readlink -f "$(dirname "$lib")")/$(basename "$lib")"
      mkdir -p "$base$(dirname "$dest")"
      cp -L "$lib" "$base$dest"
    done
  # The loader is found by the path in the programs' headers (/lib64/...): where the
  # host's /lib64 is a link (merged /usr), the image has the same link.
  local interp interp_dir
  interp=$(readelf -lW /usr/bin/git | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  [ -n "$interp" ] || die "cannot read git's program interpreter"
  interp_dir=$(dirname "$interp")
  if [ -L "$interp_dir" ] && [ ! -e "$base$interp_dir" ]; then
    ln -s "$(readlink "$interp_dir")" "$base$interp_dir"
  fi
  [ -e "$base$interp" ] || die "the image would not hold the loader $interp"

  # ssh refuses to run for a user /etc/passwd does not name; HOME is the writable /tmp.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$base/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$base/etc/group"
  find "$base" -type d -exec chmod 0755 {} +
  chmod 1777 "$base/tmp"
}

# A layer's tar, the same bytes for the same tree: names sorted, times 0, owners 0 by number,
# no per-run names in the PAX headers, the top-level entries in sorted order.
write_tar() {
  local dir=$1 out=$2 entries
  mapfile -t entries < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
  LC_ALL=C tar --sort=name --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$dir" -cf "$out" "${entries[@]}"
}

build_binary
say "staging the base layer from this machine's packages"
stage_base "$work/base"
mkdir -p "$work/app"
install -m 0755 "$bin" "$work/app/kubectl-sync"
write_tar "$work/base" "$work/base.tar"
write_tar "$work/app" "$work/app.tar"

say "assembling the image with regctl $REGCTL_VERSION"
labels=(--label "org.opencontainers.image.title=kubectl-sync"
  --label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.source=$source_url")
if revision=$(git -C "$root" rev-parse HEAD 2>/dev/null); then
  labels+=(--label "org.opencontainers.image.revision=$revision")
fi
build_ref="ocidir://$work/layout:build"
# regctl stamps the layout's index.json with the time unless told one (its spelling).
export SOURCE_DATE_EPOC=0
"$regctl" image create "$build_ref" --created "$epoch" --platform linux/amd64 >&2
"$regctl" image mod "$build_ref" --replace \
  --layer-add "tar=$work/base.tar" --layer-add "tar=$work/app.tar" \
  --config-entrypoint '["/kubectl-sync"]' --user 65532 \
  --env PATH=/usr/bin --env XDG_CACHE_HOME=/var/cache/kubectl-gitops \
  "${labels[@]}" >&2
# History entries are stamped with the time of the change: a second pass sets every
# time in the config to the epoch.
"$regctl" image mod "$build_ref" --replace --config-time "set=$epoch" >&2
# A fresh layout holding only this image's blobs. Only an earlier layout is replaced.
if [ -e "$out" ] && [ ! -f "$out/oci-layout" ] && [ -n "$(ls -A "$out")" ]; then
  die "$out exists and is not an OCI image layout: give another --out"
fi
rm -rf "$out"
mkdir -p "$(dirname "$out")"
"$regctl" image copy "$build_ref" "ocidir://$out:$tag" >&2
digest=$("$regctl" image digest "ocidir://$out:$tag")
say "image $digest in $out (tag $tag), $(du -sh "$out" | cut -f1) compressed"
echo "$digest"

if [ -n "$push" ]; then
  repo=$push push_tag=$tag
  last=${push##*/}
  if [[ $last == *:* ]]; then push_tag=${last#*:}; repo=${push%:*}; fi
  host_args=()
  if $plain_http; then host_args=(--host "reg=${repo%%/*},tls=disabled"); fi
  say "pushing to $repo:$push_tag"
  "$regctl" "${host_args[@]}" image copy "ocidir://$out:$tag" "$repo:$push_tag" >&2
  pushed=$("$regctl" "${host_args[@]}" image digest "$repo:$push_tag")
  [ "$pushed" = "$digest" ] || die "the registry holds $repo:$push_tag as $pushed, not $digest"
  echo "$repo@$pushed"
fi

if $pin; then
  file="$deploy/deployment.yaml"
  [ "$(grep -c '^ *image: ' "$file")" = 1 ] || die "$file must have exactly one image: line"
  current=$(sed -n 's/^ *image: *//p' "$file")
  name=${current%@*}
  # A tag in the old reference goes: the digest says it all.
  case "${name##*/}" in *:*) name=${name%:*} ;; esac
  if [ -n "$push" ]; then name=$repo; fi
  sed -i "s|^\( *image: *\).*|\1$name@$digest|" "$file"
  say "pinned $file to $name@$digest"
fi
