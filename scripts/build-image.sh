#!/usr/bin/env bash
# Builds the shoal image without an image registry: a Debian bookworm root file system made with debootstrap
# (cached), imported as the base image, plus a shoal binary built on this host and the Swift runtime libraries
# it links. The image is the same as compose/Containerfile's: user shoal (uid 10001), ENTRYPOINT shoal.
#
#   scripts/build-image.sh [--engine podman|docker] [--binary .build/debug/shoal] [--tag shoal:latest]
#
# Environment: SHOAL_IMAGE_CACHE (default /var/cache/shoal-test, or ~/.cache/shoal-test when that is not
# writable) keeps the root file system between runs; DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

engine=""
binary=.build/debug/shoal
tag=shoal:latest
while [ $# -gt 0 ]; do
    case "$1" in
        --engine) engine="$2"; shift 2 ;;
        --binary) binary="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "error: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
if [ -z "$engine" ]; then
    if command -v podman >/dev/null 2>&1; then engine=podman
    elif command -v docker >/dev/null 2>&1; then engine=docker
    else echo "error: neither podman nor docker is installed (scripts/install-deps.sh --test)" >&2; exit 69; fi
fi
case "$engine" in podman|docker) ;; *) echo "error: --engine must be podman or docker" >&2; exit 64 ;; esac
[ -x "$binary" ] || { echo "error: $binary is not an executable: run swift build first" >&2; exit 66; }

# What the binary links besides the Swift runtime comes from these packages.
packages="libzmq5,libsqlite3-0,libstdc++6,libgcc-s1,libcurl4,libxml2,git,ca-certificates,openssh-client"
revision=1   # bump when the root file system's recipe changes
key=$(printf '%s %s' "$packages" "$revision" | sha256sum | cut -c1-12)
base="shoal-base:bookworm-$key"

cache="${SHOAL_IMAGE_CACHE:-}"
if [ -z "$cache" ]; then
    if mkdir -p /var/cache/shoal-test 2>/dev/null && [ -w /var/cache/shoal-test ]; then cache=/var/cache/shoal-test
    else cache="$HOME/.cache/shoal-test"; fi
fi
mkdir -p "$cache"
rootfs_tar="$cache/bookworm-rootfs-$key.tar"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -s "$rootfs_tar" ]; then
    command -v debootstrap >/dev/null 2>&1 \
        || { echo "error: debootstrap is not installed (scripts/install-deps.sh --test)" >&2; exit 69; }
    [ "$(id -u)" -eq 0 ] || { echo "error: debootstrap needs root (run once as root to fill $cache)" >&2; exit 77; }
    echo "debootstrap: bookworm with $packages (cached in $rootfs_tar)"
    root="$work/rootfs"
    mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    # The service user, and the directories the compose volumes mount: a new named volume takes the owner of the
    # image's directory, so the journal, keys, state and work directories belong to shoal from the start.
    echo 'shoal:x:10001:10001:shoal:/var/lib/shoal:/usr/sbin/nologin' >>"$root/etc/passwd"
    echo 'shoal:x:10001:' >>"$root/etc/group"
    echo 'shoal:!:19000::::::' >>"$root/etc/shadow"
    for dir in /var/lib/shoal /var/lib/shoal/keys /var/lib/shoal/journal /var/lib/shoal/output /var/lib/shoal/state \
        /var/lib/shoal/work; do
        mkdir -p "$root$dir"
        chown 10001:10001 "$root$dir"
        chmod 0700 "$root$dir"
    done
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    tar --numeric-owner -C "$root" -cf "$rootfs_tar.part" .
    mv "$rootfs_tar.part" "$rootfs_tar"
fi

image_exists() {
    if [ "$engine" = podman ]; then podman image exists "$1"; else docker image inspect "$1" >/dev/null 2>&1; fi
}
if ! image_exists "$base"; then
    echo "importing $rootfs_tar as $base"
    "$engine" import "$rootfs_tar" "$base" >/dev/null
fi

# The binary and the Swift runtime libraries it links (ldd names them; the rest is in the base image).
context="$work/context"
mkdir -p "$context/swift-lib"
cp "$binary" "$context/shoal"
# `shoal agent` becomes the lean agent built beside shoal (see docs/architecture.md).
lean="$(dirname "$binary")/shoal-agent"
[ -x "$lean" ] || { echo "error: $lean is not an executable: run swift build first" >&2; exit 66; }
cp "$lean" "$context/shoal-agent"
swift_dir=$(ldd "$binary" | awk '/libswiftCore\.so/ {print $3}' | xargs -r dirname)
if [ -n "$swift_dir" ]; then
    ldd "$binary" | awk '{print $3}' | grep "^$swift_dir/" | while read -r lib; do
        cp -L "$lib" "$context/swift-lib/"
    done
fi
cp compose/Containerfile.prebuilt "$context/Containerfile"
echo "building $tag from $base and $binary"
"$engine" build --quiet --build-arg "BASE=$base" -f "$context/Containerfile" -t "$tag" "$context" >/dev/null
# Every library resolves inside the image, or this fails here rather than in a service.
"$engine" run --rm --network none --entrypoint /usr/local/bin/shoal "$tag" version
