#!/usr/bin/env bash
# Alias resolution and alias moves, side by side on one machine: the Rust registry
# (criterion: LiveModel, a local directory, S3 on a moto server, the MLflow backend) and the
# Python MlflowClient against the same local MLflow tracking server (SQLite backend); then
# the same operations on a model that lived through 10, 1,000 and 100,000 updates, and
# garbage collection racing registrations (benches/registry_lifecycle.rs; REVISIONS and
# GC_VERSIONS change the sizes).
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

echo "== Rust: cargo bench -p mlops-benches --bench registry_lifecycle (10 to 100,000 revisions, garbage collection)"
cargo bench -p mlops-benches --bench registry_lifecycle -- --noplot | tee "$work/lifecycle.log"

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
    ("resolve_version_s3", "version number of champion: S3 (a LiveModel poll)"),
    ("resolve_mlflow", "resolve champion: MlflowRegistry + MLflow server"),
    ("resolve_version_mlflow", "version number of champion: MlflowRegistry (a poll)"),
    ("cas_alias_move_local_dir", "compare-and-swap alias move: local directory"),
]:
    estimates = criterion_dir / bench / "new" / "estimates.json"
    if estimates.exists():
        show(label, json.loads(estimates.read_text())["median"]["point_estimate"] / 1e9)
show(f"resolve champion: MlflowClient {peer['mlflow']} + server", peer["median_seconds"])
PY

"$MLOPS_PYTHON" - "$CARGO_TARGET_DIR/criterion" "$work/lifecycle.log" <<'PY'
import json, sys
from pathlib import Path
criterion_dir, log = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
print()
print(f"{'registry that lived':<44} {'revisions':>10} {'median':>12} {'vs 10':>8}")
for group, where in [("registry_at_scale_local_dir", "local directory"), ("registry_at_scale_s3", "S3 (moto)")]:
    for operation in ["resolve", "compare_and_swap"]:
        sizes = sorted((criterion_dir / group / operation).glob("*/new/estimates.json"), key=lambda p: int(p.parts[-3]))
        base = None
        for estimates in sizes:
            median = json.loads(estimates.read_text())["median"]["point_estimate"] / 1e9
            base = base or median
            label = f"{operation.replace('_', '-')}, {where}"
            print(f"{label:<44} {int(estimates.parts[-3]):>10,} {median * 1e6:>10.1f}us {median / base:>7.2f}x")
for line in log.splitlines():
    if line.startswith("garbage collection: "):
        gc = json.loads(line.removeprefix("garbage collection: "))
        print(f"garbage collection of {gc['versions']:,} versions' packages: {gc['seconds']:.2f} s, "
              f"{gc['packages_removed']:,} removed, {gc['packages_live']:,} live, "
              f"{gc['registered_while_collecting']} registered meanwhile, "
              f"{gc['live_versions_lost']} of {gc['live_versions_checked']:,} live versions lost")
PY
