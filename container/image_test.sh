#!/usr/bin/env bash
# make image-test: build the CPU image and run it end to end, as SageMaker would.
#
#   1. build (container/build_image.sh cpu)
#   2. generate a small synthetic data set, `recordio_tools prepare` it into a local /opt/ml tree
#   3. IMAGE train   with that tree mounted at /opt/ml (as root, like SageMaker) -> model/, output/success
#   4. IMAGE serve   as the unprivileged user seq2seq, model/ mounted read-only, on a loopback port
#   5. /ping, JSON, RecordIO-protobuf and JSON lines /invocations (demo/endpoint_check.py)
#   6. SIGTERM -> clean exit 0
# Prints the duration of each step and the image size; any failure stops it with a message and the
# container's log. Work files: build/image-test/ (git-ignored).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/image_engine.sh"

PY="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
WORK="$REPO_ROOT/build/image-test"
IMAGE="$(image_name cpu)"
SERVE_NAME="seq2seq-image-test-serve-$$"
TRAIN_NAME="seq2seq-image-test-train-$$"
HYPERPARAMETERS='{"num_embed_source": 16, "num_embed_target": 16, "rnn_num_hidden": 32,
  "batch_size": 32, "max_seq_len_source": 12, "max_seq_len_target": 14, "bucket_width": 4,
  "learning_rate": 0.005, "checkpoint_frequency_num_batches": 20, "max_num_batches": 40,
  "bleu_sample_size": 10, "log_frequency_num_batches": 10, "devices": "cpu", "seed": 3}'
declare -A SECONDS_OF

[ -x "$PY" ] || die "no Python at $PY: run make install (or set PYTHON)"

# Each step's function checks its own commands and calls `die` (errexit does not apply inside `||`).
step() {  # step NAME COMMAND...: run, time, fail loudly
    local name="$1"; shift
    local started=$SECONDS
    log "--- $name"
    "$@" || die "$name failed (exit $?)"
    SECONDS_OF[$name]=$((SECONDS - started))
}

cleanup() {
    "$ENGINE" rm -f "$SERVE_NAME" "$TRAIN_NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

prepare_tree() {
    rm -rf "$WORK"
    mkdir -p "$WORK"
    (cd "$REPO_ROOT" && "$PY" -m demo.synthetic_task --output "$WORK/corpus" --train 1200 --validation 60 --test 20 \
        && "$PY" -m recordio_tools prepare --quiet --output "$WORK/prepared" \
            --train-source "$WORK/corpus/train.src" --train-target "$WORK/corpus/train.trg" \
            --val-source "$WORK/corpus/val.src" --val-target "$WORK/corpus/val.trg" \
        && "$PY" -m demo.sagemaker_tree --prepared "$WORK/prepared" --base "$WORK/opt_ml" \
            --hyperparameters "$HYPERPARAMETERS")
}

run_train() {
    local code=0
    "$ENGINE" run --name "$TRAIN_NAME" "${ENGINE_FLAGS[@]}" -v "$WORK/opt_ml:/opt/ml" "$IMAGE" train \
        > "$WORK/train.log" 2>&1 || code=$?
    grep -E '#quality_metric|training (finished|stopped)' "$WORK/train.log" | sed 's/^/  train | /' >&2 || true
    if [ "$code" -ne 0 ]; then
        tail -30 "$WORK/train.log" >&2
        cat "$WORK/opt_ml/output/failure" >&2 2>/dev/null || true
        die "IMAGE train exited with $code"
    fi
    "$ENGINE" rm "$TRAIN_NAME" >/dev/null || true
    local file
    for file in model/params.best model/config.json model/vocab.src.json model/vocab.trg.json output/success; do
        [ -f "$WORK/opt_ml/$file" ] || die "IMAGE train exited 0 but wrote no /opt/ml/$file"
    done
    [ ! -e "$WORK/opt_ml/output/failure" ] || die "IMAGE train wrote a failure file: $(cat "$WORK/opt_ml/output/failure")"
    log "model: $(ls "$WORK/opt_ml/model" | tr '\n' ' ')"
}

start_serve() {
    PORT="$(free_port)"
    local publish=()
    if [ "$ENGINE_NETWORK" = host ]; then
        publish=(-e "SAGEMAKER_BIND_TO_PORT=$PORT")
    else
        publish=(-p "127.0.0.1:$PORT:8080")
    fi
    "$ENGINE" run -d --name "$SERVE_NAME" --user seq2seq "${ENGINE_FLAGS[@]}" "${publish[@]}" \
        -v "$WORK/opt_ml/model:/opt/ml/model:ro" "$IMAGE" serve >/dev/null || die "could not start IMAGE serve"
    local deadline=$((SECONDS + 180))
    until curl_ping "http://127.0.0.1:$PORT/ping"; do
        if [ "$("$ENGINE" inspect --format '{{.State.Running}}' "$SERVE_NAME")" != true ]; then
            "$ENGINE" logs "$SERVE_NAME" >&2 || true
            die "IMAGE serve exited before answering /ping"
        fi
        [ $SECONDS -lt $deadline ] || { "$ENGINE" logs "$SERVE_NAME" >&2; die "no /ping 200 within 180 s"; }
        sleep 0.5
    done
    log "serving on 127.0.0.1:$PORT"
}

curl_ping() {
    "$PY" -c 'import sys, requests
try:
    sys.exit(0 if requests.get(sys.argv[1], timeout=2).status_code == 200 else 1)
except requests.RequestException:
    sys.exit(1)' "$1"
}

check_endpoint() {
    (cd "$REPO_ROOT" && "$PY" -m demo.endpoint_check --url "http://127.0.0.1:$PORT" \
        --model-dir "$WORK/opt_ml/model" --sentences "$WORK/corpus/test.src") \
        || { "$ENGINE" logs "$SERVE_NAME" 2>&1 | tail -30 >&2; return 1; }
}

stop_serve() {
    "$ENGINE" kill --signal TERM "$SERVE_NAME" >/dev/null || die "could not send SIGTERM to IMAGE serve"
    local code
    code="$(timeout 60 "$ENGINE" wait "$SERVE_NAME")" || die "IMAGE serve did not exit within 60 s of SIGTERM"
    "$ENGINE" logs "$SERVE_NAME" > "$WORK/serve.log" 2>&1 || true
    [ "$code" = 0 ] || { tail -20 "$WORK/serve.log" >&2; die "IMAGE serve exited with $code after SIGTERM"; }
    log "SIGTERM: serve exited 0 ($(grep -c . "$WORK/serve.log") log lines in $WORK/serve.log)"
}

main() {
    local started=$SECONDS
    step "build image" bash "$REPO_ROOT/container/build_image.sh" cpu
    engine_select 2>/dev/null
    step "prepare /opt/ml tree" prepare_tree
    step "IMAGE train" run_train
    step "IMAGE serve until /ping" start_serve
    step "invocations" check_endpoint
    step "SIGTERM and exit" stop_serve
    echo
    echo "image-test passed: $IMAGE, $(image_size_mb "$IMAGE") MB"
    local name
    for name in "build image" "prepare /opt/ml tree" "IMAGE train" "IMAGE serve until /ping" "invocations" \
            "SIGTERM and exit"; do
        printf '  %-26s %4d s\n' "$name" "${SECONDS_OF[$name]}"
    done
    printf '  %-26s %4d s\n' "total" $((SECONDS - started))
}

main
