#!/usr/bin/env bash
# Build the image:  bash container/build_image.sh [cpu|gpu]   (make image / make image-gpu-check)
#
# With a running Docker engine: docker build. Otherwise podman + runc, on a Debian bookworm base
# made locally with debootstrap (no registry needed for the base image), cached as a tarball under
# build/container/. pip inside the build gets the host's CA bundle and a pip.conf naming it as
# build-time volumes, so the Dockerfile itself stays generic.
#
# Environment: IMAGE_REPOSITORY (default seq2seq-mxnet; the tag is the device), IMAGE_ENGINE=podman
# (ignore docker), DEBIAN_MIRROR, HOST_CA_BUNDLE, BUILD_FLAGS (extra build flags, e.g. --no-cache).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/image_engine.sh"

DEVICE="${1:-cpu}"
case "$DEVICE" in cpu|gpu) ;; *) die "usage: $0 [cpu|gpu] (got '$DEVICE')" ;; esac

BASE_IMAGE_LOCAL="localhost/debian:bookworm-slim"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_TARBALL="$ENGINE_WORK_DIR/debian-bookworm-minbase.tar"

# trim_rootfs DIR: drop package caches and docs, and configure apt/dpkg as the slim image does.
trim_rootfs() {
    local root="$1"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    find "$root"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
    find "$root"/usr/share/doc -mindepth 1 -type d -empty -delete
    cat > "$root"/etc/dpkg/dpkg.cfg.d/excludes <<'EOF'
# as in debian:bookworm-slim: no manuals, documentation (except copyright) or translations
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
EOF
    rm -f "$root"/etc/apt/sources.list
    cat > "$root"/etc/apt/sources.list.d/debian.sources <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    printf 'APT::Install-Recommends "false";\n' > "$root"/etc/apt/apt.conf.d/90no-recommends
}

# ensure_base_image: localhost/debian:bookworm-slim from the cached tarball, or debootstrap it.
ensure_base_image() {
    if podman image exists "$BASE_IMAGE_LOCAL"; then
        log "base image $BASE_IMAGE_LOCAL present"
        return 0
    fi
    if [ ! -s "$BASE_TARBALL" ]; then
        local rootfs="$ENGINE_WORK_DIR/rootfs.tmp"
        log "debootstrap --variant=minbase bookworm (about a minute)"
        rm -rf "$rootfs"
        as_root debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" \
            > "$ENGINE_WORK_DIR/debootstrap.log" 2>&1 \
            || { tail -20 "$ENGINE_WORK_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $ENGINE_WORK_DIR/debootstrap.log)"; }
        as_root bash -c "$(declare -f trim_rootfs); DEBIAN_MIRROR='$DEBIAN_MIRROR' trim_rootfs '$rootfs'"
        as_root tar -C "$rootfs" --numeric-owner -cf "$BASE_TARBALL.tmp" .
        mv "$BASE_TARBALL.tmp" "$BASE_TARBALL"
        as_root rm -rf "$rootfs"
    fi
    log "importing $BASE_IMAGE_LOCAL from $BASE_TARBALL"
    podman import --quiet "$BASE_TARBALL" "$BASE_IMAGE_LOCAL" >/dev/null
}

# pip_build_volumes: a volume flag giving pip, which runs as root in the build, a configuration
# directory (/root/.config/pip) holding the host's CA bundle and a pip.conf naming it; the image's
# own CA bundle is left alone. Prints nothing when the host has no CA bundle.
pip_build_volumes() {
    local bundle="${HOST_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
    [ -s "$bundle" ] || return 0
    local dir="$ENGINE_WORK_DIR/pip-config"
    mkdir -p "$dir"
    cp "$(readlink -f "$bundle")" "$dir/host-ca-bundle.crt"
    {
        printf '[global]\ncert = /root/.config/pip/host-ca-bundle.crt\ntimeout = 120\n'
        if [ -n "${PIP_INDEX_URL:-}" ]; then printf 'index-url = %s\n' "$PIP_INDEX_URL"; fi
    } > "$dir/pip.conf"
    printf -- '--volume=%s:/root/.config/pip:ro\n' "$dir"
}

main() {
    engine_select
    local image
    image="$(image_name "$DEVICE")"
    local started=$SECONDS
    if [ "$ENGINE" = docker ]; then
        # shellcheck disable=SC2086  # BUILD_FLAGS is a list of flags
        docker build ${BUILD_FLAGS:-} --build-arg DEVICE="$DEVICE" -t "$image" "$REPO_ROOT"
    else
        ensure_base_image
        local volumes=()
        mapfile -t volumes < <(pip_build_volumes)
        log "podman build $image (DEVICE=$DEVICE)"
        # shellcheck disable=SC2086
        podman build "${ENGINE_FLAGS[@]}" "${volumes[@]}" ${BUILD_FLAGS:-} \
            --build-arg BASE_IMAGE="$BASE_IMAGE_LOCAL" --build-arg DEVICE="$DEVICE" \
            --tag "$image" --file "$REPO_ROOT/Dockerfile" "$REPO_ROOT"
    fi
    log "built $image in $((SECONDS - started)) s; size $(image_size_mb "$image") MB"
}

main
