#!/usr/bin/env bash
# Serving under load, side by side on one machine: the transactions model behind the
# mlops-infer router (benches/serving.rs) and behind `mlflow models serve` (the same
# pipeline as a pyfunc model, trained on the same rows); then one scikit-learn pipeline
# exported to ONNX by Python (benches/peer/onnx_batch.py) and an XGBoost model of 500
# trees (benches/peer/boosted_batch.py), each one MLflow model directory behind both. Each
# is driven by wrk on loopback with the same MLflow `dataframe_split` bodies of 1 and 100
# records.
#
#   benches/compare-serving.sh                 # 8 connections, 20 s per run
#   CONNECTIONS=32 DURATION=30s benches/compare-serving.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh

connections="${CONNECTIONS:-8}"
duration="${DURATION:-20s}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-rs/target}"
data_dir="$CARGO_TARGET_DIR/bench-data"
export MLOPS_BENCH_DIR="$data_dir"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
  echo "== installing wrk"
  apt-get install -y wrk >/dev/null
fi
python_env

free_port() { "$MLOPS_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
  for _ in $(seq 1 600); do
    if curl -fs "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "server at $1 did not come up" >&2
  return 1
}
load() { # url payload -> "requests/s p50 p99" (milliseconds)
  cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$2", "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.errors.timeout))
end
LUA
  wrk -t2 -c"$connections" -d"$duration" -s "$work/post.lua" "$1" | grep '^RESULT' | cut -d' ' -f2-
}

# Drives both servers with the payloads of 1 and 100 records and prints a table: $1 the
# title, $2 and $3 the ports of the Rust and the MLflow server, $4 the payload directory.
table() {
  declare -A rps
  printf '\n%-30s %8s %12s %10s %10s %8s\n' "$1" "records" "requests/s" "p50 ms" "p99 ms" "errors"
  for rows in 1 100; do
    for server in rust mlflow; do
      port=$2; [ "$server" = mlflow ] && port=$3
      read -r r p50 p99 status timeouts < <(load "http://127.0.0.1:$port/invocations" "$4/payload-$rows.json")
      rps[$server-$rows]=$r
      name="mlops-infer router"; [ "$server" = mlflow ] && name="mlflow models serve"
      printf '%-30s %8s %12s %10s %10s %8s\n' "$name" "$rows" "$r" "$p50" "$p99" "$((status + timeouts))"
    done
    "$MLOPS_PYTHON" -c "print(f'    ratio at $rows record(s): {${rps[rust-$rows]} / ${rps[mlflow-$rows]}:.0f}x requests/s')"
  done
}

echo "== Rust: mlops-infer router (release build)"
rust_port=$(free_port)
bench_bin=$(cargo bench -p mlops-benches --features serve --bench serving --no-run --message-format=json 2>/dev/null |
  "$MLOPS_PYTHON" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "serving" and m.get("executable"):
        print(m["executable"])')
MLOPS_BENCH_PORT=$rust_port "$bench_bin" --bench &
pids+=($!)
wait_for "http://127.0.0.1:$rust_port/health"
payloads="$data_dir/transactions-10000"

echo "== MLflow: mlflow models serve (pyfunc, --env-manager local, default workers)"
(cd benches/peer && "$MLOPS_PYTHON" save_pyfunc.py "$payloads" "$work/pyfunc-model" >/dev/null 2>&1)
mlflow_port=$(free_port)
# The server starts uvicorn from PATH: the virtual environment's.
PATH="$(dirname "$MLOPS_PYTHON"):$PATH" "$(dirname "$MLOPS_PYTHON")/mlflow" models serve -m "$work/pyfunc-model" \
  --env-manager local -h 127.0.0.1 -p "$mlflow_port" >"$work/mlflow-serve.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$mlflow_port/ping" || { tail -20 "$work/mlflow-serve.log"; exit 1; }

table "server" "$rust_port" "$mlflow_port" "$payloads"

echo
echo "== what observability costs: the same router with a Prometheus recorder and a subscriber at info, then at debug"
observed_port=$(free_port)
MLOPS_SERVE_TELEMETRY=1 MLOPS_BENCH_PORT=$observed_port "$bench_bin" --bench &
pids+=($!)
debug_port=$(free_port)
MLOPS_SERVE_TELEMETRY=debug MLOPS_BENCH_PORT=$debug_port "$bench_bin" --bench &
pids+=($!)
wait_for "http://127.0.0.1:$observed_port/health"
wait_for "http://127.0.0.1:$debug_port/health"
printf '\n%-30s %8s %12s %10s %10s %8s\n' "telemetry" "records" "requests/s" "p50 ms" "p99 ms" "errors"
for rows in 1 100; do
  declare -A observed
  for mode in off info debug; do
    case $mode in off) port=$rust_port ;; info) port=$observed_port ;; debug) port=$debug_port ;; esac
    read -r r p50 p99 status timeouts < <(load "http://127.0.0.1:$port/invocations" "$payloads/payload-$rows.json")
    observed[$mode]=$r
    printf '%-30s %8s %12s %10s %10s %8s\n' "$mode" "$rows" "$r" "$p50" "$p99" "$((status + timeouts))"
  done
  "$MLOPS_PYTHON" -c "print(f'    at $rows record(s): metrics and info {100 * (${observed[info]} / ${observed[off]} - 1):+.1f}%, with request spans (debug) {100 * (${observed[debug]} / ${observed[off]} - 1):+.1f}% requests/s')"
done

# One MLflow model directory behind both servers: $1 a title, $2 the directory, $3 the
# directory with payload-1.json and payload-100.json.
compare_model() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pids=()
  rust_port=$(free_port)
  MLOPS_SERVE_MODEL=$2 MLOPS_BENCH_PORT=$rust_port "$bench_bin" --bench &
  pids+=($!)
  wait_for "http://127.0.0.1:$rust_port/health"
  mlflow_port=$(free_port)
  PATH="$(dirname "$MLOPS_PYTHON"):$PATH" "$(dirname "$MLOPS_PYTHON")/mlflow" models serve -m "$2" \
    --env-manager local -h 127.0.0.1 -p "$mlflow_port" >"$work/mlflow-serve-model.log" 2>&1 &
  pids+=($!)
  wait_for "http://127.0.0.1:$mlflow_port/ping" || { tail -20 "$work/mlflow-serve-model.log"; exit 1; }
  table "server ($1)" "$rust_port" "$mlflow_port" "$3"
}

echo
echo "== the same scikit-learn pipeline exported to ONNX, one MLflow model directory behind both"
onnx_model="$payloads/onnx-model"
[ -f "$onnx_model/MLmodel" ] || "$MLOPS_PYTHON" benches/peer/onnx_batch.py prepare "$payloads" "$onnx_model" >/dev/null 2>&1
compare_model "ONNX model" "$onnx_model" "$payloads"

echo
echo "== an XGBoost model of 500 trees of depth 8 (benches/peer/boosted_batch.py), one MLflow model directory behind both"
boosted="$data_dir/boosted-1000000"
[ -f "$boosted/xgboost-model/MLmodel" ] || "$MLOPS_PYTHON" benches/peer/boosted_batch.py prepare "$boosted" 1000000 >/dev/null 2>&1
"$MLOPS_PYTHON" - "$boosted" <<'PY'
import json, sys
from pathlib import Path
import pandas as pd
boosted = Path(sys.argv[1])
frame = pd.read_parquet(boosted / "score.parquet").head(100).astype("float64")
for rows in (1, 100):
    part = frame.head(rows).astype(object).where(frame.head(rows).notna(), None)
    body = {"dataframe_split": {"columns": list(part.columns), "data": part.values.tolist()}}
    (boosted / f"payload-{rows}.json").write_text(json.dumps(body))
PY
compare_model "XGBoost model" "$boosted/xgboost-model" "$boosted"
