# Image for the seq2seq training job and HTTP endpoint.
#
#   docker run IMAGE train   # reads /opt/ml/input, writes /opt/ml/model (SageMaker training)
#   docker run IMAGE serve   # serves /opt/ml/model on port 8080 (SageMaker hosting)
#
# Build arguments:
#   BASE_IMAGE  a Debian bookworm image (default debian:bookworm-slim)
#   DEVICE      cpu (mxnet) or gpu (mxnet-cu117 plus NVIDIA's CUDA 11 runtime libraries from PyPI,
#               so no CUDA base image is needed; the host provides only the driver, libcuda.so.1)
# container/build_image.sh builds it with docker, or with podman where no docker engine runs.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG DEVICE=cpu

# Python 3.11 from Debian, and the shared libraries libmxnet.so loads from the system
# (a bare bookworm lacks libgomp1 and libquadmath0).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv libgomp1 libquadmath0 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# Pinned Python dependencies in a virtualenv. For DEVICE=gpu, mxnet is swapped for mxnet-cu117
# and the CUDA libraries it links are registered with the dynamic loader (ld.so.conf.d).
COPY requirements.txt container/requirements-gpu.txt /tmp/requirements/
RUN set -eu; \
    python3 -m venv /opt/venv; \
    cd /tmp/requirements; \
    case "$DEVICE" in \
      cpu) /opt/venv/bin/pip install --no-cache-dir -r requirements.txt ;; \
      gpu) grep -v -E '^mxnet([^a-zA-Z0-9_-]|$)' requirements.txt > requirements-common.txt; \
           /opt/venv/bin/pip install --no-cache-dir -r requirements-common.txt -r requirements-gpu.txt; \
           find /opt/venv -type d -path '*/site-packages/nvidia/*/lib' | sort > /etc/ld.so.conf.d/nvidia-pypi.conf; \
           ldconfig ;; \
      *) echo "DEVICE must be cpu or gpu, got '$DEVICE'" >&2; exit 1 ;; \
    esac; \
    rm -rf /tmp/requirements; \
    find /opt/venv -depth -type d -name __pycache__ -exec rm -rf {} +

# SageMaker expects containers to run as root ("users that do not have root-level access can cause
# permissions issues"), so root stays the default user. Outside SageMaker, run unprivileged with
# `--user seq2seq` (group 0, so directories made group-writable for root work too).
RUN useradd --uid 1000 --gid 0 --create-home --home-dir /home/seq2seq --shell /usr/sbin/nologin seq2seq

# Code last, so that code changes rebuild only these layers. /opt/ml stays empty: SageMaker mounts it.
COPY seq2seq /opt/program/seq2seq
COPY recordio_tools /opt/program/recordio_tools
COPY container/ /opt/program/

ENV PATH="/opt/program:/opt/venv/bin:${PATH}" \
    PYTHONPATH="/opt/program" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
LABEL org.opencontainers.image.title="seq2seq-mxnet" seq2seq.device="${DEVICE}"

WORKDIR /opt/program
EXPOSE 8080
ENTRYPOINT ["/opt/program/entrypoint"]
