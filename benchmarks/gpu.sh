#!/usr/bin/env bash
# Every GPU measurement of the project, most important first, so that a short GPU session
# still leaves the headline figures: the GPU tests, the speed benchmarks (augmentation cost,
# then training steps), gpu-full, inference throughput with gpu-full's last classifier, then
# the four ablations of gpu-full, then the comparison table. Results land in
# benchmarks/results/ (inference throughput in inference_speed-<gpu>.json, after the GPU).
#
#   bash benchmarks/gpu.sh                       # seed 0 of everything
#   SEEDS="0 1 2" bash benchmarks/gpu.sh         # the issue's three seeds
#   STEPS="tests speed" bash benchmarks/gpu.sh   # a subset, in this order
#   DATA=/path/to/HAM10000 PYTHON=.venv/bin/python bash benchmarks/gpu.sh
#   RESUME=1 STEPS=gpu-full bash benchmarks/gpu.sh  # finish runs a time limit cut short
#   REUSE_PRETRAINING=0 bash benchmarks/gpu.sh   # ablations train their own SupCon stage
#   WORK_DIR=/scratch/runs bash benchmarks/gpu.sh  # accuracy.py --work-dir (default data/benchmarks)
#   PARALLEL=1 STEPS=ablations bash benchmarks/gpu.sh  # the ablations at once on the one GPU
#   SPEED_ARGS="--workers 8 --steps 60" STEPS=speed bash benchmarks/gpu.sh  # speed.py's options
#   STEP_TIMEOUT=25m bash benchmarks/gpu.sh      # stop any one command after 25 minutes
#
# It refuses to start without CUDA: on a CPU these settings take days, and the CPU figures
# come from `python benchmarks/accuracy.py --setting cpu-quick` instead. A step that fails
# does not stop the later ones (a failing GPU test should not cost the speed figures); the
# script names the failed steps at the end and exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
DATA=${DATA:-../shared/data/ham10000_200x150}
SEEDS=${SEEDS:-0}
STEPS=${STEPS:-tests speed gpu-full inference ablations compare}
DEFAULT_ABLATIONS="no-contrastive metadata-fusion cross-entropy weighted-sampling"
ABLATIONS=${ABLATIONS:-$DEFAULT_ABLATIONS}
# RESUME=1: the accuracy runs keep the seeds already recorded and the stages an interrupted
# run finished (benchmarks/accuracy.py --resume), so a killed session loses only the stage
# it was in.
RESUME=${RESUME:-}
# REUSE_PRETRAINING=1 (default): an ablation of the classifier alone (metadata-fusion,
# cross-entropy, weighted-sampling) takes gpu-full's SupCon encoder of the same seed, kept by
# this machine's gpu-full step, instead of training it again (accuracy.py
# --pretraining-from): half the time, and the pair differs in the ablated factor alone. Where
# gpu-full's outputs for a seed are not here (recorded on another machine), it trains its own.
REUSE_PRETRAINING=${REUSE_PRETRAINING:-1}
# PARALLEL=1: the ablations step starts every ablation at once instead of one after another.
# One small model leaves an H200 idle for much of a run (Kedro start-ups, decoding, the
# reporting's CPU work, evaluation), so the runs share it at about half the total wall time.
# Each run gets an equal share of the CPU threads and writes its output to
# $LOG_DIR/<ablation>.log; its records say it shared the device (accuracy.py --concurrent), so
# its wall times are not read as those of a run alone. The test figures are not affected.
PARALLEL=${PARALLEL:-0}
# SPEED_ARGS: more arguments for benchmarks/speed.py, e.g. "--workers 8" where /dev/shm cannot
# hold the default loader's batches in flight (every core but one, two batches each: about
# 4.6 GB for SupCon at batch 128 with 15 workers), or "--steps 60" for a longer timed window.
SPEED_ARGS=${SPEED_ARGS:-}
# STEP_TIMEOUT: a limit for each command a step runs (each ablation's run on its own), as
# coreutils `timeout` reads it (90s, 25m, 2h; empty: none). A command past it is stopped with
# its child processes, named among the failed steps, and the later steps still run; the
# accuracy runs keep what they finished, for RESUME=1 to go on from.
STEP_TIMEOUT=${STEP_TIMEOUT:-}
LOG_DIR=${LOG_DIR:-${WORK_DIR:-data/benchmarks}/logs}
work=()
[[ -n ${WORK_DIR:-} ]] && work=(--work-dir "$WORK_DIR")
export KEDRO_DISABLE_TELEMETRY=true

# Check every name before anything runs: a typo must not surface after minutes of GPU time.
for name in $STEPS; do
    case "$name" in
        tests | speed | gpu-full | inference | ablations | compare) ;;
        *)
            echo "benchmarks/gpu.sh: unknown step '$name' in STEPS" \
                "(known: tests speed gpu-full inference ablations compare)" >&2
            exit 2
            ;;
    esac
done

case "$REUSE_PRETRAINING" in
    0 | 1) ;;
    *)
        echo "benchmarks/gpu.sh: REUSE_PRETRAINING=$REUSE_PRETRAINING: expected 1 or 0" >&2
        exit 2
        ;;
esac

case "$PARALLEL" in
    0 | 1) ;;
    *)
        echo "benchmarks/gpu.sh: PARALLEL=$PARALLEL: expected 1 or 0" >&2
        exit 2
        ;;
esac

if [[ -n $STEP_TIMEOUT && ! $STEP_TIMEOUT =~ ^[0-9]+(\.[0-9]+)?[smhd]?$ ]]; then
    echo "benchmarks/gpu.sh: STEP_TIMEOUT=$STEP_TIMEOUT: expected a duration such as 90s," \
        "25m or 2h (coreutils timeout), or empty for none" >&2
    exit 2
fi
# STEP_TIMEOUT in milliseconds (0: no limit, as timeout reads 0), to tell its stop from a
# command's own exit status 124 or 137 (an OOM kill is 137 too).
step_timeout_ms=$(awk -v d="${STEP_TIMEOUT:-0}" 'BEGIN { u = substr(d, length(d))
    f = u == "m" ? 60 : u == "h" ? 3600 : u == "d" ? 86400 : 1; printf "%d", (d + 0) * f * 1000 }')

case "$RESUME" in
    "" | 0) resume=() ;;
    1) resume=(--resume) ;;
    *)
        echo "benchmarks/gpu.sh: RESUME=$RESUME: expected 1 (resume) or 0/empty" >&2
        exit 2
        ;;
esac

# ABLATIONS and SPEED_ARGS reach accuracy.py and speed.py only when their steps come: read by
# those scripts' own names and parser here, first (only where set and their step is asked for).
# `--option=value`: a value that starts with "-" (SPEED_ARGS=--cudnn-benchmark) is not taken
# for an option of gpu_settings.py's own.
settings=()
if [[ " $STEPS " == *" ablations "* && $ABLATIONS != "$DEFAULT_ABLATIONS" ]]; then
    settings+=("--ablations=$ABLATIONS")
fi
[[ -n $SPEED_ARGS && " $STEPS " == *" speed "* ]] && settings+=("--speed-args=$SPEED_ARGS")
if ((${#settings[@]})) && ! "$PYTHON" benchmarks/gpu_settings.py "${settings[@]}"; then
    exit 2
fi

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: no CUDA device visible to $PYTHON; nothing run" >&2
    exit 2
fi
# The project's own ranges (pip check does not see them where the project runs uninstalled):
# named in a second, not minutes into a run. Reported, not fatal: a step may still run.
"$PYTHON" benchmarks/check_dependencies.py ||
    echo "benchmarks/gpu.sh: dependencies missing or out of range (above); going on" >&2
if [[ ! -f "$DATA/HAM10000_metadata.csv" ]]; then
    echo "benchmarks/gpu.sh: DATA=$DATA has no HAM10000_metadata.csv" >&2
    exit 2
fi

step() { echo "== $(date -u +%H:%M:%S) $*" >&2; }
# The GPU's name for a file name, as skin_lesion.provenance.device_slug makes it ("NVIDIA H100
# 80GB HBM3" -> h100-80gb-hbm3), so that one GPU's results never take another's file (and
# inference_speed.py refuses to replace a result measured on another GPU); "gpu" where
# nvidia-smi does not answer.
gpu_slug() {
    local slug
    slug=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 |
        tr '[:upper:]' '[:lower:]' |
        sed -e 's/nvidia//g' -e 's/[^a-z0-9][^a-z0-9]*/-/g' -e 's/^-*//' -e 's/-*$//')
    echo "${slug:-gpu}"
}
# --pretraining-from gpu-full for an ablation of the classifier alone, where gpu-full kept
# every seed's outputs on this machine; nothing otherwise.
reuse() {
    local ablation=$1 seed
    [[ $REUSE_PRETRAINING == 1 ]] || return 0
    case "$ablation" in
        no-contrastive | contrastive) return 0 ;;
    esac
    for seed in $SEEDS; do
        [[ -f ${WORK_DIR:-data/benchmarks}/gpu-full/kept/seed$seed/06_models/pretrained_encoder.pt ]] ||
            return 0
    done
    echo --pretraining-from gpu-full
}
# A command under STEP_TIMEOUT, where set: past it, TERM to the command's process group (its
# children too), KILL 60 s later; exit status 124 (137 after the KILL). timeout puts the
# command in a process group of its own, which a Ctrl-C at the terminal does not reach: it
# waits in the background here, and an INT or TERM to this script is passed on to it.
limited() {
    if [[ -z $STEP_TIMEOUT ]]; then
        "$@"
        return
    fi
    local status=0 start=$SECONDS
    # Set before the command starts, so that no signal falls between the two. HUP too: the
    # command is out of the terminal's process group, so a hangup would not reach it.
    trap 'stop_jobs INT 130' INT
    trap 'stop_jobs TERM 143' TERM
    trap 'stop_jobs HUP 129' HUP
    timeout -k 60 "$STEP_TIMEOUT" "$@" &
    wait "$!" || status=$?
    trap - INT TERM HUP
    # 124 and 137 name a stop at STEP_TIMEOUT only where the limit was reached (SECONDS counts
    # whole seconds: at least the limit's whole seconds have passed by then).
    if ((status == 124 || status == 137)) &&
        ((step_timeout_ms == 0 || SECONDS - start < step_timeout_ms / 1000)); then
        echo "benchmarks/gpu.sh: ${*:1:2} exited with status $status before STEP_TIMEOUT" >&2
        status=1
    fi
    return "$status"
}
# Pass a signal on to this shell's background jobs (limited's timeout), wait for them, exit.
stop_jobs() {
    local pids
    pids=$(jobs -p)
    # shellcheck disable=SC2086  # one pid a word
    [[ -n $pids ]] && kill -s "$1" $pids 2>/dev/null
    wait
    exit "$2"
}
# One ablation's accuracy run; arguments after the name are added at the end.
run_ablation() {
    local name=$1
    shift
    # shellcheck disable=SC2086
    limited "$PYTHON" benchmarks/accuracy.py --setting gpu-full --ablation "$name" --data "$DATA" \
        --seeds $SEEDS "${resume[@]}" "${work[@]}" "$@"
}
# The ablations at once (PARALLEL=1), each in the background with its own log; a run that
# fails is named like any failed step. Stopping the script stops them too. Returns 1, having
# started nothing, where the GPU takes one process at a time (an exclusive compute mode).
parallel_ablations() {
    local names=($ABLATIONS) pids=() i name from threads mode
    ((${#names[@]})) || return 0
    mode=$(nvidia-smi --query-gpu=compute_mode --format=csv,noheader 2>/dev/null | head -n 1)
    if [[ -n $mode && $mode != Default ]]; then
        step "GPU compute mode '$mode' takes one process at a time: the ablations run in turn"
        return 1
    fi
    threads=$(($(nproc) / ${#names[@]}))
    ((threads >= 1)) || threads=1
    mkdir -p "$LOG_DIR"
    # Background jobs of a script ignore Ctrl-C, and so do their Kedro stages: stop the whole
    # process group instead.
    trap 'stop_parallel 130' INT
    trap 'stop_parallel 143' TERM
    trap 'stop_parallel 129' HUP
    for name in "${names[@]}"; do
        from=$(reuse "$name")
        step "gpu-full ablation $name, seeds $SEEDS${from:+ ($from)}, in parallel" \
            "(${#names[@]} runs, $threads threads each): $LOG_DIR/$name.log"
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=$threads run_ablation "$name" --concurrent "${#names[@]}" $from \
            >"$LOG_DIR/$name.log" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || note_failure "${names[$i]}" $?
    done
    trap - INT TERM HUP
}
# TERM to the runs (this process group; under STEP_TIMEOUT each run passes it on to its
# timeout's group), then wait for them before exiting: this shell ignores its own TERM, which
# would otherwise end it at once, before its runs had stopped (and with 143 for a Ctrl-C).
stop_parallel() {
    trap '' INT TERM HUP
    kill -TERM 0 2>/dev/null
    wait
    exit "$1"
}
failed=()
# A failed step's name, marked where STEP_TIMEOUT stopped it.
note_failure() {
    local label=$1 status=$2
    if [[ -n $STEP_TIMEOUT ]] && ((status == 124 || status == 137)); then
        label+=" (stopped at STEP_TIMEOUT=$STEP_TIMEOUT)"
    fi
    failed+=("$label")
}
# One step's command (run_ablation applies STEP_TIMEOUT itself: timeout runs programs only).
run() {
    local label=$1 status=0
    shift
    if declare -F "$1" >/dev/null; then
        "$@" || status=$?
    else
        limited "$@" || status=$?
    fi
    ((status == 0)) || note_failure "$label" "$status"
}

for name in $STEPS; do
    case "$name" in
        tests)
            step "GPU tests"
            run tests "$PYTHON" -m pytest -q -m gpu tests/test_gpu.py tests/test_augment.py \
                tests/test_batches.py
            ;;
        speed)
            step "augmentation cost a batch (ours; kornia's too where it is installed)"
            run augment-cost "$PYTHON" benchmarks/augment_cost.py
            step "speed benchmark (defaults: efficientnet_b0, 224 px, batch 128)"
            # shellcheck disable=SC2086
            run speed "$PYTHON" benchmarks/speed.py --data "$DATA" $SPEED_ARGS
            ;;
        gpu-full)
            step "gpu-full, seeds $SEEDS"
            # shellcheck disable=SC2086
            run gpu-full "$PYTHON" benchmarks/accuracy.py --setting gpu-full --data "$DATA" \
                --seeds $SEEDS "${resume[@]}" "${work[@]}"
            ;;
        inference)
            # The classifier and operating point of gpu-full's last seed, on every image.
            step "inference throughput (gpu-full's classifier, all images of $DATA)"
            run inference "$PYTHON" benchmarks/inference_speed.py \
                --data-dir "${WORK_DIR:-data/benchmarks}/gpu-full/data/gpu_full" \
                --images "$DATA" --metadata "$DATA/HAM10000_metadata.csv" \
                --out "benchmarks/results/inference_speed-$(gpu_slug).json"
            ;;
        ablations)
            if [[ $PARALLEL == 1 ]] && parallel_ablations; then
                continue
            fi
            for ablation in $ABLATIONS; do
                from=$(reuse "$ablation")
                step "gpu-full ablation $ablation, seeds $SEEDS${from:+ ($from)}"
                # shellcheck disable=SC2086
                run "$ablation" run_ablation "$ablation" $from
            done
            ;;
        compare)
            step "ablation table"
            run compare "$PYTHON" benchmarks/accuracy.py --setting gpu-full --compare
            ;;
    esac
done
if ((${#failed[@]})); then
    joined=$(printf '%s, ' "${failed[@]}")
    step "failed: ${joined%, }; results so far in benchmarks/results/"
    exit 1
fi
step "done; results in benchmarks/results/"
