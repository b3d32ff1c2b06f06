#!/usr/bin/env bash
# Batch scoring, side by side on one machine: the Rust batch scorer (criterion) and the
# MLflow pyfunc path, on the same Parquet file, with the model trained on the same rows.
#
#   benches/compare.sh            # 1,000,000 rows
#   MLOPS_BENCH_ROWS=200000 benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
source scripts/bench-env.sh

bench_env 1000000

python_env
echo "== Rust: cargo bench -p mlops-benches --bench batch_scoring ($rows rows)"
cargo bench -p mlops-benches --bench batch_scoring -- --noplot

echo "== MLflow pyfunc on the same file"
peer_json=$("$MLOPS_PYTHON" benches/peer/pyfunc_batch.py "$data_dir/transactions-$rows")
echo "$peer_json"

"$MLOPS_PYTHON" - "$CARGO_TARGET_DIR/criterion/batch_scoring" "$rows" "$peer_json" <<'PY'
import json, sys
from pathlib import Path
criterion_dir, rows, peer = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
print()
print(f"{'path':<42} {'median s':>10} {'rows/s':>14} {'vs pyfunc':>10}")
for bench in ["transactions_parallel_chunks", "transactions_one_chunk"]:
    estimates = json.loads((criterion_dir / bench / "new" / "estimates.json").read_text())
    seconds = estimates["median"]["point_estimate"] / 1e9
    print(f"{'mlops-infer ' + bench:<42} {seconds:>10.4f} {rows / seconds:>14,.0f} {peer['median_seconds'] / seconds:>9.1f}x")
print(f"{'mlflow.pyfunc ' + peer['mlflow']:<42} {peer['median_seconds']:>10.4f} {peer['rows_per_second']:>14,.0f} {1:>9.1f}x")
PY
