#!/usr/bin/env bash
# Streaming files into a Delta table, side by side on one machine: the Rust streaming scorer
# (criterion) and the Python path (MLflow pyfunc + the `deltalake` package), on the same
# Parquet files of 10,000 transactions, model trained on the same rows. Also prints the
# Delta append and label-merge costs as the table grows (Rust only).
#
#   benches/compare-streaming.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-rs/target}"
data_dir="$CARGO_TARGET_DIR/bench-data"
export MLOPS_BENCH_DIR="$data_dir"

python_env
echo "== Rust: cargo bench -p mlops-benches --features delta --bench streaming"
cargo bench -p mlops-benches --features delta --bench streaming -- --noplot

echo "== MLflow pyfunc + deltalake on the same files"
peer_json=$(cd benches/peer && "$MLOPS_PYTHON" stream_delta.py "$data_dir/transactions-200000")
echo "$peer_json"

"$MLOPS_PYTHON" - "$CARGO_TARGET_DIR/criterion" "$peer_json" <<'PY'
import json, sys
from pathlib import Path
criterion, peer = Path(sys.argv[1]), json.loads(sys.argv[2])
rows = peer["rows"]
seconds = json.loads((criterion / "streaming/files_to_delta/new/estimates.json").read_text())["median"]["point_estimate"] / 1e9
latency = json.loads((criterion / "streaming/latency.json").read_text())
print()
print(f"{'path':<34} {'rows/s':>12} {'p50 batch':>10} {'p99 batch':>10} {'vs peer':>8}")
print(f"{'mlops-infer StreamingScorer':<34} {rows / seconds:>12,.0f} {latency['p50_seconds'] * 1e3:>8.1f}ms {latency['p99_seconds'] * 1e3:>8.1f}ms {peer['median_seconds'] / seconds:>7.1f}x")
print(f"{'pyfunc + deltalake ' + peer['mlflow']:<34} {peer['rows_per_second']:>12,.0f} {peer['p50_seconds'] * 1e3:>8.1f}ms {peer['p99_seconds'] * 1e3:>8.1f}ms {1:>7.1f}x")
print()
print(f"{'table rows':>12} {'append 10k rows':>16} {'merge 1k labels':>16}")
for size in sorted(int(p.name) for p in (criterion / "delta/append_10k_rows").iterdir() if p.name.isdigit()):
    cost = lambda bench: json.loads((criterion / f"delta/{bench}/{size}/new/estimates.json").read_text())["median"]["point_estimate"] / 1e6
    print(f"{size:>12,} {cost('append_10k_rows'):>14.1f}ms {cost('merge_1k_labels'):>14.1f}ms")
PY
