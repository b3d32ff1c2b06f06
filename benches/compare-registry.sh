#!/usr/bin/env bash
# Alias resolution and alias moves, side by side on one machine: the Rust registry
# (criterion: LiveModel, a local directory, S3 on a moto server) and the Python
# MlflowClient against a local MLflow tracking server (SQLite backend).
#
#   benches/compare-registry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
python_env
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-rs/target}"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  "$MLOPS_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {
  "$MLOPS_PYTHON" - "$1" <<'PY'
import sys, time, urllib.error, urllib.request
deadline = time.time() + 120
while True:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=2)
        break
    except urllib.error.HTTPError:
        break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"no answer from {sys.argv[1]}")
        time.sleep(0.3)
PY
}
bin=$(dirname "$MLOPS_PYTHON")

s3_port=$(free_port)
"$bin/moto_server" -H 127.0.0.1 -p "$s3_port" > "$work/moto.log" 2>&1 &
pids+=($!)
export MLOPS_S3_ENDPOINT="http://127.0.0.1:$s3_port" MLOPS_S3_BUCKET="mlops-bench"
wait_for "$MLOPS_S3_ENDPOINT/"
"$MLOPS_PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"))' \
  "$MLOPS_S3_ENDPOINT/$MLOPS_S3_BUCKET"

mlflow_port=$(free_port)
"$bin/mlflow" server --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/artifacts" \
  --host 127.0.0.1 --port "$mlflow_port" > "$work/mlflow.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$mlflow_port/health"

echo "== Rust: cargo bench -p mlops-benches --bench alias_resolution"
cargo bench -p mlops-benches --bench alias_resolution -- --noplot

echo "== Python: MlflowClient against the MLflow server"
# MLflow prints run links on stdout; the figures are the last line.
peer_json=$("$MLOPS_PYTHON" benches/peer/mlflow_alias.py "http://127.0.0.1:$mlflow_port" 2> "$work/peer.log" | tail -n 1)
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
    ("cas_alias_move_local_dir", "compare-and-swap alias move: local directory"),
]:
    estimates = criterion_dir / bench / "new" / "estimates.json"
    if estimates.exists():
        show(label, json.loads(estimates.read_text())["median"]["point_estimate"] / 1e9)
show(f"resolve champion: MlflowClient {peer['mlflow']} + server", peer["median_seconds"])
PY
