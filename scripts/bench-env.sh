# shellcheck shell=bash
# Sourced by the comparison benchmarks: `bench_env DEFAULT_ROWS` exports CARGO_TARGET_DIR
# (default ~/.cache/mlops-rs/target), MLOPS_BENCH_DIR (its bench-data folder, shared by the
# Rust benches and their Python peers) and MLOPS_BENCH_ROWS (DEFAULT_ROWS unless set), and
# sets `data_dir` and `rows` to them.

bench_env() {
  rows="${MLOPS_BENCH_ROWS:-$1}"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-rs/target}"
  data_dir="$CARGO_TARGET_DIR/bench-data"
  export MLOPS_BENCH_DIR="$data_dir" MLOPS_BENCH_ROWS="$rows"
}
