#!/usr/bin/env bash
# make image-gpu-check (after build_image.sh gpu): show that libmxnet.so of the GPU image finds every
# shared library it links, except the driver's libcuda.so.1, which the NVIDIA container runtime mounts
# from the host. Needs no GPU. Also checks the CUDA libraries' own dependencies.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/image_engine.sh"

engine_select
IMAGE="$(image_name gpu)"
"$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: run bash container/build_image.sh gpu"

# Runs inside the image: ldd of libmxnet.so and of every library in the nvidia/*/lib directories.
read -r -d '' INSIDE <<'EOF' || true
set -eu
mxnet_lib=$(find /opt/venv -name libmxnet.so | head -1)
[ -n "$mxnet_lib" ] || { echo "libmxnet.so not found under /opt/venv"; exit 1; }
echo "== ldd $mxnet_lib"
ldd "$mxnet_lib" | sed 's/ (0x[0-9a-f]*)//'
echo "== libraries registered in /etc/ld.so.conf.d/nvidia-pypi.conf"
cat /etc/ld.so.conf.d/nvidia-pypi.conf
unexpected=0
for lib in "$mxnet_lib" $(find /opt/venv -path '*/site-packages/nvidia/*/lib/lib*.so*' -type f); do
    missing=$(ldd "$lib" 2>/dev/null | awk '/not found/ {print $1}' | grep -v '^libcuda\.so\.1$' || true)
    if [ -n "$missing" ]; then
        echo "UNRESOLVED in $lib: $missing"
        unexpected=1
    fi
done
echo "== not found in the image:"
ldd "$mxnet_lib" | awk '/not found/ {print "  " $1 ($1 == "libcuda.so.1" ? " (expected: the host driver provides it)" : " (MISSING)")}'
exit $unexpected
EOF

log "ldd inside $IMAGE"
if "$ENGINE" run --rm "${ENGINE_FLAGS[@]}" "$IMAGE" bash -c "$INSIDE"; then
    log "every library libmxnet.so needs resolves inside $IMAGE except the driver's libcuda.so.1; size $(image_size_mb "$IMAGE") MB"
else
    die "unresolved libraries in $IMAGE (see above)"
fi
