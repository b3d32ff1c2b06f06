#!/usr/bin/env bash
# Alias resolution and alias moves, side by side on one machine: the Rust registry
# (criterion: LiveModel, a local directory, S3 on a moto server, the MLflow backend) and the
# Python MlflowClient against the same local MLflow tracking server (SQLite backend).
#
#   benches/compare-registry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
source scripts/servers.sh
python_env
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-rs/target}"

work=$(mktemp -d)
cleanup() {
  stop_servers
  rm -rf "$work"
}
trap cleanup EXIT
start_s3 "$work" mlops-bench
start_mlflow "$work"
wait_for_mlflow

echo "== Rust: cargo bench -p mlops-benches --bench alias_resolution"
cargo bench -p mlops-benches --bench alias_resolution -- --noplot

echo "== Python: MlflowClient against the MLflow server"
# MLflow prints run links on stdout; the figures are the last line.
peer_json=$("$MLOPS_PYTHON" benches/peer/mlflow_alias.py "$MLOPS_MLFLOW_URI" 2> "$work/peer.log" | tail -n 1)
echo "$peer_json"

"$MLOPS_PYTHON" - "$CARGO_TARGET_DIR/criterion/alias_resolution" "$peer_json" <<'PY'
import json, sys
from pathlib import Path
criterion_dir, peer = Path(sys.argv[1]), json.loads(sys.argv[2])
print()
print(f"{'operation':<52} {'median':>12} {'per second':>12}")
def show(label, seconds):
    print(f"{label:<52} {seconds * 1e6:>10.2f}us {1 / seconds:>12,.0f}")
for bench, label in [
    ("live_model", "resolve champion: LiveModel (in memory)"),
    ("resolve_local_dir", "resolve champion: local directory, uncached"),
    ("resolve_s3", "resolve champion: S3 (moto on loopback), uncached"),
    ("resolve_mlflow", "resolve champion: MlflowRegistry + MLflow server"),
    ("cas_alias_move_local_dir", "compare-and-swap alias move: local directory"),
]:
    estimates = criterion_dir / bench / "new" / "estimates.json"
    if estimates.exists():
        show(label, json.loads(estimates.read_text())["median"]["point_estimate"] / 1e9)
show(f"resolve champion: MlflowClient {peer['mlflow']} + server", peer["median_seconds"])
PY
