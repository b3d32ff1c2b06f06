#!/usr/bin/env bash
# Monitoring an inference table, side by side on one machine: mlops-eval's Monitor
# (benches/monitoring.rs, criterion) and pandas + SciPy + scikit-learn computing the same
# tables (benches/peer/monitor.py), on the same Parquet files.
#
#   benches/compare-monitoring.sh                 # 10,000,000 rows
#   MLOPS_BENCH_ROWS=1000000 benches/compare-monitoring.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
source scripts/bench-env.sh

bench_env 10000000

python_env
echo "== Rust: cargo bench -p mlops-benches --bench monitoring ($rows rows)"
cargo bench -p mlops-benches --bench monitoring -- --noplot

echo "== pandas + SciPy on the same files"
peer_json=$("$MLOPS_PYTHON" benches/peer/monitor.py "$data_dir/monitoring-$rows")
echo "$peer_json"

"$MLOPS_PYTHON" - "$CARGO_TARGET_DIR/criterion/monitoring/hourly_two_versions_five_columns" "$rows" "$peer_json" <<'PY'
import json, sys
from pathlib import Path
criterion_dir, rows, peer = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
estimates = json.loads((criterion_dir / "new" / "estimates.json").read_text())
seconds = estimates["median"]["point_estimate"] / 1e9
print()
print(f"{'path':<40} {'median s':>10} {'rows/s':>14} {'vs pandas':>10}")
print(f"{'mlops-eval Monitor':<40} {seconds:>10.3f} {rows / seconds:>14,.0f} {peer['median_seconds'] / seconds:>9.1f}x")
name = f"pandas {peer['pandas']} + SciPy {peer['scipy']}"
print(f"{name:<40} {peer['median_seconds']:>10.3f} {peer['rows_per_second']:>14,.0f} {1:>9.1f}x")
PY
