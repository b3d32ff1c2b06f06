#!/usr/bin/env bash
# LLM-judged evaluation, side by side on one machine against one OpenAI-compatible judge
# that answers every request after a fixed latency (the scripted judge of
# examples/judge_server.rs): mlops-eval (benches/genai_eval.rs, release build) and
# mlflow.evaluate with MLflow's answer_correctness metric and 10 judge workers
# (benches/peer/genai_eval.py), grading the same rows.
#
#   benches/compare-genai.sh                   # 200 rows, 50 ms judge latency
#   ROWS=500 LATENCY_MS=100 benches/compare-genai.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh

rows="${ROWS:-200}"
latency="${LATENCY_MS:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-rs/target}"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
python_env

echo "== judge: scripted, ${latency} ms per reply (release build)"
cargo build --release -p mlops-examples --features judge-server --example judge_server
"$CARGO_TARGET_DIR/release/examples/judge_server" --port 0 --latency-ms "$latency" >"$work/judge.url" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/judge.url" ] && break; sleep 0.1; done
url=$(head -1 "$work/judge.url")
echo "    $url"

echo "== Rust: mlops-eval GenAiEvaluation, $rows rows"
MLOPS_JUDGE_URL="$url" MLOPS_JUDGE_LATENCY_MS="$latency" MLOPS_BENCH_ROWS="$rows" \
  cargo bench -p mlops-benches --features judge-server --bench genai_eval -- --noplot

echo "== MLflow: mlflow.evaluate, answer_correctness, 10 workers, $rows rows"
(cd "$work" && "$MLOPS_PYTHON" "$OLDPWD/benches/peer/genai_eval.py" --judge-url "$url" --rows "$rows" --workers 10 \
  2>"$work/mlflow.log" | tee "$work/mlflow.txt") || { tail -20 "$work/mlflow.log"; exit 1; }

# Rows per second from criterion's median estimate, as the other comparison scripts read it.
throughput() { # criterion directory, rows per iteration -> rows per second
  "$MLOPS_PYTHON" -c 'import json, sys
median = json.load(open(sys.argv[1] + "/new/estimates.json"))["median"]["point_estimate"]
print(int(sys.argv[2]) / (median / 1e9))' "$CARGO_TARGET_DIR/criterion/$1" "$2"
}
rust10=$(throughput "genai_eval/judge_${latency}ms_concurrency_10" "$rows")
rust64=$(throughput "genai_eval/judge_${latency}ms_concurrency_64" "$rows")
pipeline=$(throughput "genai_pipeline/instant_judge" 2000)
mlflow=$(sed -E 's/.*rows_per_second=([0-9.]+).*/\1/' "$work/mlflow.txt")
"$MLOPS_PYTHON" - <<PY
latency = $latency / 1000
print()
print(f"{'':34} {'rows/s':>10} {'C/L bound':>10}")
print(f"{'mlops-eval, concurrency 10':34} {$rust10:>10.1f} {10 / latency:>10.1f}")
print(f"{'mlops-eval, concurrency 64':34} {$rust64:>10.1f} {64 / latency:>10.1f}")
print(f"{'mlflow.evaluate, 10 workers':34} {$mlflow:>10.1f} {10 / latency:>10.1f}")
print(f"    ratio at 10 concurrent judge calls: {$rust10 / $mlflow:.1f}x rows/s")
print(f"    pipeline cost with an instant in-process judge: {1e6 / $pipeline:.1f} us per row")
PY
