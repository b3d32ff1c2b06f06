#!/usr/bin/env bash
# SQL scoring, side by side on one machine and the same Parquet file: the batch scorer, SQL
# `score(...)` and `predict(...)` on DataFusion (criterion), and `mlflow.pyfunc.spark_udf` on
# local Spark, with the model trained on the same rows.
#
#   benches/compare-sql.sh            # 1,000,000 rows
#   MLOPS_BENCH_ROWS=200000 benches/compare-sql.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
source scripts/bench-env.sh

bench_env 1000000

python_env
"$MLOPS_PYTHON" -m pip install --quiet -r benches/peer/requirements-spark.txt
echo "== Rust: cargo bench -p mlops-benches --features sql --bench sql_scoring ($rows rows)"
cargo bench -p mlops-benches --features sql --bench sql_scoring -- --noplot

echo "== mlflow.pyfunc.spark_udf on local Spark, on the same file"
peer_json=$("$MLOPS_PYTHON" benches/peer/spark_udf.py "$data_dir/transactions-$rows" 2>/dev/null | tail -n 1)
echo "$peer_json"

"$MLOPS_PYTHON" - "$CARGO_TARGET_DIR/criterion/sql_scoring" "$rows" "$peer_json" <<'PY'
import json, sys
from pathlib import Path
criterion_dir, rows, peer = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
def median(bench):
    estimates = json.loads((criterion_dir / bench / "new" / "estimates.json").read_text())
    return estimates["median"]["point_estimate"] / 1e9
scorer = median("batch_scorer")
print()
print(f"{'path':<34} {'median s':>10} {'rows/s':>14} {'vs BatchScorer':>15} {'vs spark_udf':>13}")
for bench in ["batch_scorer", "sql_score_table", "sql_predict"]:
    seconds = median(bench)
    print(f"{'mlops-infer ' + bench:<34} {seconds:>10.4f} {rows / seconds:>14,.0f} {seconds / scorer - 1:>+14.1%} {peer['median_seconds'] / seconds:>12.1f}x")
name = f"spark_udf (Spark {peer['spark']}, {peer['cores']} cores)"
print(f"{name:<34} {peer['median_seconds']:>10.4f} {peer['rows_per_second']:>14,.0f} {'':>15} {1:>12.1f}x")
PY
