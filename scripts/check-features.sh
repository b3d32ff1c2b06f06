#!/usr/bin/env bash
# Each feature of the library crates builds alone, and so does each crate with none (the
# tests build `mlops-infer/delta`, a superset of `stream`, with every feature on): a
# `cfg` gate that forgets an item shows here rather than in a user's build. Checks only (no
# code generation); a warning fails like an error.
#
# Cargo resolves the features of every dependency anew for each such selection, and a
# selection whose dependency features differ from the others' checks its whole tree again
# (polars included: a few minutes on 2 cores, cold). The test suite runs the selections that
# share their dependency trees with a crate's no-feature build, and the quickstart: three
# trees. `--all` adds the features whose dependencies make a tree of their own (tabular,
# forecast, image, onnx, serve, genai, monitor, testing): eight more trees, for a change to
# `cfg` gates or to optional dependencies.
#
# usage: scripts/check-features.sh [--all]
set -euo pipefail
cd "$(dirname "$0")/.."

check() {
  local crate=$1 features=${2:-}
  shift $(($# < 2 ? $# : 2))
  echo "-- $crate: ${features:-no features} $*"
  local args=(check --locked --quiet -p "$crate" --no-default-features "$@")
  if [ -n "$features" ]; then args+=(--features "$features"); fi
  local out
  if ! out=$(cargo "${args[@]}" 2>&1); then
    printf '%s\n' "$out" >&2
    exit 1
  fi
  if grep -q '^warning' <<<"$out"; then
    printf '%s\n' "$out" >&2
    echo "cargo check -p $crate with ${features:-no features} warns" >&2
    exit 1
  fi
}

all=false
case "${1:-}" in
  --all) all=true ;;
  "") ;;
  *) echo "usage: $0 [--all]" >&2; exit 2 ;;
esac

core_features=("" xgboost lightgbm)
infer_features=("" stream)
eval_features=("")
if $all; then
  core_features+=(tabular forecast image onnx)
  infer_features+=(serve)
  eval_features+=(genai monitor testing)
fi

for feature in "${core_features[@]}"; do check mlops-core "$feature"; done
check mlops-registry
for feature in "${infer_features[@]}"; do check mlops-infer "$feature"; done
for feature in "${eval_features[@]}"; do check mlops-eval "$feature"; done
# What `cargo run --release --example quickstart` builds.
check mlops-examples "" --example quickstart
