#!/usr/bin/env bash
# Each feature of the library crates builds alone, and so does each crate with none (the
# tests build `mlops-infer/delta`, a superset of `stream`, with every feature on): a
# `cfg` gate that forgets an item shows here rather than in a user's build. Checks only (no
# code generation); a warning fails like an error.
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

for feature in "" tabular forecast image onnx xgboost lightgbm; do check mlops-core "$feature"; done
check mlops-registry
for feature in "" stream serve; do check mlops-infer "$feature"; done
for feature in "" genai monitor testing; do check mlops-eval "$feature"; done
# What `cargo run --release --example quickstart` builds.
check mlops-examples "" --example quickstart
