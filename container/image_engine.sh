# Sourced by build_image.sh, image_test.sh and gpu_ldd_check.sh: picks the container engine.
#
# docker is used when `docker info` reaches a running engine. Otherwise podman with runc, host
# networking and a containers.conf without default ulimits (the setup that works on machines
# without a Docker engine); podman, runc and debootstrap are installed with apt-get if missing.
#
# After `engine_select`:
#   ENGINE            docker | podman
#   ENGINE_FLAGS      array: flags for `build` and `run` (runtime, network)
#   ENGINE_NETWORK    host (container shares the host's ports) | bridge (publish with -p)
#   ENGINE_WORK_DIR   git-ignored directory for generated configuration and caches

REPO_ROOT="${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
ENGINE_WORK_DIR="${ENGINE_WORK_DIR:-$REPO_ROOT/build/container}"
IMAGE_REPOSITORY="${IMAGE_REPOSITORY:-seq2seq-mxnet}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# as_root CMD...: run CMD as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (install podman, runc and debootstrap, or start a Docker engine)"
    fi
}

# install_podman_tools: apt-get install podman, runc, debootstrap if any is missing.
install_podman_tools() {
    local missing=()
    command -v podman >/dev/null 2>&1 || missing+=(podman)
    command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "no docker engine and no apt-get to install: ${missing[*]}"
    log "installing ${missing[*]} with apt-get"
    as_root apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        podman runc debootstrap >/dev/null
}

# write_containers_conf: containers.conf without default ulimits, exported as CONTAINERS_CONF.
write_containers_conf() {
    mkdir -p "$ENGINE_WORK_DIR"
    local conf="$ENGINE_WORK_DIR/containers.conf"
    printf '[containers]\ndefault_ulimits = []\n' > "$conf"
    export CONTAINERS_CONF="$conf"
}

engine_select() {
    if [ "${IMAGE_ENGINE:-}" != podman ] && command -v docker >/dev/null 2>&1 \
            && docker info >/dev/null 2>&1; then
        ENGINE=docker
        ENGINE_FLAGS=()
        ENGINE_NETWORK=bridge
    else
        install_podman_tools
        write_containers_conf
        ENGINE=podman
        ENGINE_FLAGS=(--runtime runc --network host)
        ENGINE_NETWORK=host
    fi
    log "container engine: $ENGINE"
}

# image_name DEVICE: the local tag of the image for DEVICE (cpu|gpu).
image_name() {
    echo "${IMAGE_REPOSITORY}:$1"
}

# image_size_mb IMAGE: the image's size in MB (10^6 bytes).
image_size_mb() {
    local bytes
    bytes=$("$ENGINE" image inspect --format '{{.Size}}' "$1")
    echo $(( bytes / 1000000 ))
}
