#!/usr/bin/env bash
# Gradient-boosted trees, side by side on one machine: an XGBoost and a LightGBM model of
# 500 trees of depth 8 over 30 features, trained in Python and saved by MLflow, scored by
# the Rust flavors through BatchScorer (criterion), by each library's own predictor at as
# many threads as the machine has cores (what the Rust scorer uses) and by mlflow.pyfunc,
# all on the same Parquet file; then one-row latency.
#
#   benches/compare-boosted.sh            # 1,000,000 rows
#   MLOPS_BENCH_ROWS=200000 benches/compare-boosted.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
source scripts/bench-env.sh

bench_env 1000000
threads=$(nproc)

python_env
echo "== Rust: cargo bench -p mlops-benches --bench boosted_scoring ($rows rows)"
cargo bench -p mlops-benches --bench boosted_scoring -- --noplot

echo "== the libraries' own predictors ($threads threads) and mlflow.pyfunc on the same file"
peer_json=$("$MLOPS_PYTHON" benches/peer/boosted_batch.py time "$data_dir/boosted-$rows" --threads "$threads")
echo "$peer_json"

"$MLOPS_PYTHON" - "$CARGO_TARGET_DIR/criterion/boosted_scoring" "$rows" "$peer_json" <<'PY'
import json, sys
from pathlib import Path
criterion_dir, rows, peer = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
def median(bench):
    return json.loads((criterion_dir / bench / "new" / "estimates.json").read_text())["median"]["point_estimate"] / 1e9
for library, own, own_name in [
    ("xgboost", "xgboost_inplace_predict_seconds", "Booster.inplace_predict"),
    ("lightgbm", "lightgbm_predict_seconds", "Booster.predict"),
]:
    rust, pyfunc, native = median(f"{library}_parallel_chunks"), peer[f"{library}_pyfunc_seconds"], peer[own]
    print()
    print(f"{library} {peer[library]}, {rows:,} rows, {peer['threads']} threads")
    print(f"{'path':<44} {'median s':>9} {'rows/s':>12} {'vs own':>8} {'vs pyfunc':>10}")
    for name, seconds in [
        (f"mlops-core {library} flavor, BatchScorer", rust),
        (f"{library} {own_name}", native),
        (f"mlflow.pyfunc {peer['mlflow']}", pyfunc),
    ]:
        print(f"{name:<44} {seconds:>9.4f} {rows / seconds:>12,.0f} {native / seconds:>7.2f}x {pyfunc / seconds:>9.1f}x")
print()
print("one row (median)")
for name, us in [
    ("mlops-core xgboost flavor, Model::predict", median("xgboost_one_row") * 1e6),
    ("xgboost Booster.inplace_predict", peer["xgboost_one_row_us"]),
    ("mlops-core lightgbm flavor, Model::predict", median("lightgbm_one_row") * 1e6),
    ("lightgbm Booster.predict", peer["lightgbm_one_row_us"]),
    ("mlflow.pyfunc (xgboost)", peer["xgboost_pyfunc_one_row_us"]),
]:
    print(f"{name:<44} {us:>9.1f} µs")
PY
