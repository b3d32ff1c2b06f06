#!/usr/bin/env bash
# ONNX batch scoring, side by side on one machine: a scikit-learn pipeline exported with
# skl2onnx and saved by MLflow, scored by the Rust `onnx` flavor through BatchScorer
# (criterion), by mlflow.pyfunc (onnxruntime underneath) and by a bare
# onnxruntime.InferenceSession.run with as many threads as the machine has cores (what
# the Rust scorer uses), all on the same Parquet file.
#
#   benches/compare-onnx.sh            # 1,000,000 rows
#   MLOPS_BENCH_ROWS=200000 benches/compare-onnx.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
source scripts/bench-env.sh

bench_env 1000000
threads=$(nproc)

python_env
echo "== Rust: cargo bench -p mlops-benches --bench onnx_scoring ($rows rows)"
cargo bench -p mlops-benches --bench onnx_scoring -- --noplot

echo "== mlflow.pyfunc and onnxruntime ($threads threads) on the same file"
peer_json=$("$MLOPS_PYTHON" benches/peer/onnx_batch.py time "$data_dir/transactions-$rows" \
  "$data_dir/transactions-$rows/onnx-model" --threads "$threads")
echo "$peer_json"

"$MLOPS_PYTHON" - "$CARGO_TARGET_DIR/criterion/onnx_scoring" "$rows" "$peer_json" <<'PY'
import json, sys
from pathlib import Path
criterion_dir, rows, peer = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
estimates = json.loads((criterion_dir / "sklearn_pipeline_parallel_chunks" / "new" / "estimates.json").read_text())
rust = estimates["median"]["point_estimate"] / 1e9
pyfunc = peer["pyfunc_seconds"]
print()
print(f"{'path':<52} {'median s':>9} {'rows/s':>12} {'vs pyfunc':>10}")
for name, seconds in [
    ("mlops-core onnx flavor, BatchScorer", rust),
    (f"onnxruntime {peer['onnxruntime']} run ({peer['threads']} threads)", peer["onnxruntime_run_seconds"]),
    ("onnxruntime run, arrays made from pandas included", peer["onnxruntime_with_feeds_seconds"]),
    (f"mlflow.pyfunc {peer['mlflow']}", pyfunc),
]:
    print(f"{name:<52} {seconds:>9.4f} {rows / seconds:>12,.0f} {pyfunc / seconds:>9.1f}x")
PY
