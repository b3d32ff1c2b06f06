#!/usr/bin/env bash
# The whole test suite: format check, clippy with warnings as errors, the library crates
# built with no features and with the features that share their dependency tree
# (`scripts/check-features.sh --all` checks every feature alone), the docs with warnings
# as errors, every crate's tests and doc tests, the benchmarks in test mode, the quickstart
# (run twice on one directory: the second run must add versions to the first run's
# registry), 20 seconds of the transactions
# lifecycle example, the serving example answering requests to itself and then attacked
# (scripts/abuse_server.py), a model
# registered from Python scored by the predict example and served by the serving
# example, the RAG evaluation example graded by the scripted judge server, the
# forecasting example, the image classifier example, and the Ballista scheduler and
# executor examples listening.
#
# Builds go to $CARGO_TARGET_DIR (default: ~/.cache/mlops-rs/target), outside the clone,
# so repeated runs reuse them.
#
# Test servers run on free loopback ports for the length of the run, from a Python virtual
# environment kept in ~/.cache/mlops-rs/venv (created on first use): an S3-compatible
# server (moto) and an MLflow tracking server. Tests find them through environment
# variables (MLOPS_S3_ENDPOINT, MLOPS_MLFLOW_URI, MLOPS_PYTHON, ...);
# MLOPS_REQUIRE_SERVERS=1 turns a test that would skip for lack of a server into a failure
# (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh
source scripts/servers.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-rs/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE=1

work=$(mktemp -d)
judge_pid=""
python_env_pid=""
cleanup() {
  if [ -n "$python_env_pid" ]; then kill "$python_env_pid" 2>/dev/null || true; fi
  stop_servers
  if [ -n "$judge_pid" ]; then kill "$judge_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
log="$work/tests.log"

step() { printf '\n== %s\n' "$*"; }

# A first run creates the Python environment (a few minutes of downloads and unpacking)
# while clippy compiles; the servers start once both are done.
python_env >"$work/python-env.log" 2>&1 &
python_env_pid=$!

step "cargo fmt --check"
cargo fmt --all -- --check

step "unsafe code only where the workspace allows it"
# The modules declared in these files are the exceptions: AVX-512 tree walks, and the
# Arrow C data interface between Polars and arrow-rs.
allowed=(mlops-core/src/trees/boosted.rs mlops-infer/src/delta.rs)
unexpected=$(grep -rl --include='*.rs' 'unsafe_code' mlops-* examples benches | grep -vxF "${allowed[@]/#/-e}" || true)
if [[ -n "$unexpected" ]]; then
  echo "unsafe code allowed outside ${allowed[*]}: $unexpected" >&2
  exit 1
fi

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "the library crates build with no features, and with the features sharing that tree"
scripts/check-features.sh

step "cargo doc (warnings are errors: broken links, unclosed markup)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked

step "test servers"
if ! wait "$python_env_pid"; then
  python_env_pid=""
  cat "$work/python-env.log" >&2
  exit 1
fi
python_env_pid=""
cat "$work/python-env.log"
python_env
start_mlflow "$work"
start_s3 "$work" mlops-test
wait_for_mlflow

step "cargo test --workspace --all-features (unit, integration and doc tests)"
cargo test --workspace --all-features --locked 2>&1 | tee -a "$log"

# The next steps reuse the build above: the same package selection and features, so cargo
# does not resolve a different feature set and rebuild polars for it.
step "benchmarks in test mode (the serving one with its metrics and a log subscriber on)"
MLOPS_SERVE_TELEMETRY=1 cargo test --workspace --all-features --locked --benches 2>&1 | tee -a "$log"

step "quickstart, twice on one directory"
quickstart="$CARGO_TARGET_DIR/debug/examples/quickstart"
"$quickstart" --dir "$work/quickstart" --rows 20000
"$quickstart" --dir "$work/quickstart" --rows 20000 | tee "$work/second-run.log"
if ! grep -q "transactions: 4 versions" "$work/second-run.log"; then
  echo "the second quickstart run should have registered versions 3 and 4" >&2
  exit 1
fi

step "transactions lifecycle, 20 seconds of streaming"
lifecycle="$CARGO_TARGET_DIR/debug/examples/transactions_lifecycle"
"$lifecycle" --dir "$work/lifecycle" --duration-secs 20 --records-per-tick 1000 --retrain-every 2000 \
  --history 10000 | tee "$work/lifecycle.log"
if ! grep -Eq '^    v2 trained on' "$work/lifecycle.log"; then
  echo "the lifecycle run should have trained a second version on merged labels" >&2
  exit 1
fi

step "serving example: a 90/10 split with a shadow route, 200 requests to itself"
serve="$CARGO_TARGET_DIR/debug/examples/serve"
"$serve" --dir "$work/serve" --port 0 --self-test 200 | tee "$work/serve.log"
if ! grep -q "shadow answers recorded: 200" "$work/serve.log"; then
  echo "the serving example should have recorded a shadow answer per request" >&2
  exit 1
fi
if ! grep -Eq '^    mlops_serving_requests_total\{endpoint="transactions",route="champion",status="200",format="dataframe_records"\} [0-9]+$' "$work/serve.log"; then
  echo "the serving example should have shown its requests counted in /metrics" >&2
  exit 1
fi

step "serving example under attack: wide records, large bodies, slow and idle connections, floods"
# Bounded in count and time; checks that the server answers afterwards, that its peak
# resident memory stays under 1.5 GiB, and that Ctrl-C stops it cleanly. This runs the debug
# build the tests made (a release build would add a cold build of its own);
# `scripts/abuse_server.py <release serve binary> <dir>` runs the same attacks on that.
"$MLOPS_PYTHON" scripts/abuse_server.py "$serve" "$work/serve" --max-rss-mib 1536

step "a model registered from Python on the MLflow server: the predict and serve examples"
"$MLOPS_PYTHON" mlops-infer/tests/it/mlflow_models.py "$MLOPS_MLFLOW_URI" log example_fraud 1 | tail -1 \
  | "$MLOPS_PYTHON" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["records"]))' >"$work/request.json"
predict="$CARGO_TARGET_DIR/debug/examples/predict"
"$predict" --model models:/example_fraud@champion --registry "$MLOPS_MLFLOW_URI" --input "$work/request.json" \
  --output "$work/predicted.parquet" | tee "$work/predict.log"
if ! grep -q '^scored 5 rows with example_fraud version 1 into' "$work/predict.log" || [ ! -s "$work/predicted.parquet" ]; then
  echo "the predict example should have scored the request rows with version 1" >&2
  exit 1
fi
status=0
"$predict" --model models:/no_such_model@champion --registry "$MLOPS_MLFLOW_URI" --input "$work/request.json" \
  --output "$work/unused.parquet" 2>"$work/predict-error.log" || status=$?
if [ "$status" != 3 ] || ! grep -q 'no_such_model' "$work/predict-error.log"; then
  echo "the predict example should exit with 3 naming a model that does not exist (got $status)" >&2
  exit 1
fi
"$serve" --registry "$MLOPS_MLFLOW_URI" --model models:/example_fraud@champion --port 0 --self-test 20 \
  | tee "$work/serve-python.log"
if ! grep -q 'route0 (version 1): 20 of 20 requests' "$work/serve-python.log"; then
  echo "the serving example should have answered every request with version 1 of the Python model" >&2
  exit 1
fi

step "RAG evaluation against the scripted judge server, promoting the better version"
"$CARGO_TARGET_DIR/debug/examples/judge_server" --port 0 >"$work/judge.url" &
judge_pid=$!
for _ in $(seq 1 100); do [ -s "$work/judge.url" ] && break; sleep 0.1; done
rag_eval="$CARGO_TARGET_DIR/debug/examples/rag_eval"
MLOPS_JUDGE_URL=$(head -1 "$work/judge.url") "$rag_eval" --dir "$work/rag" | tee "$work/rag.log"
if ! grep -q 'gate passed: `champion` -> v2' "$work/rag.log" || [ ! -s "$work/rag/report/report.html" ]; then
  echo "the RAG evaluation should have promoted v2 and written its report" >&2
  exit 1
fi
# A second run is answered from the judge cache: no judge call at all.
MLOPS_JUDGE_URL=$(head -1 "$work/judge.url") "$rag_eval" --dir "$work/rag" | tee "$work/rag-again.log"
if ! grep -q 'judge: 0 calls' "$work/rag-again.log"; then
  echo "the second RAG evaluation should have been served from the judge cache" >&2
  exit 1
fi
kill "$judge_pid"
judge_pid=""

step "sales forecasting: forecast by alias, promote, the same code runs the new version"
"$CARGO_TARGET_DIR/debug/examples/forecast" --dir "$work/forecast" --stores 4 --items 5 --days 400 \
  | tee "$work/forecast.log"
if ! grep -q 'champion 1 -> 2' "$work/forecast.log" \
  || ! grep -q 'models:/sales_forecast@champion = version 2' "$work/forecast.log"; then
  echo "the forecasting example should have promoted version 2 and forecast with it by alias" >&2
  exit 1
fi

step "image classifier: train, register, score by alias, a corrupt row, one served request"
"$CARGO_TARGET_DIR/debug/examples/image_classifier" --dir "$work/images" --train 300 --score 100 --epochs 4 \
  | tee "$work/images.log"
if ! grep -q 'found row 2: undecodable image' "$work/images.log" \
  || ! grep -Eq 'POST http://127.0.0.1:[0-9]+/invocations \(2 images\) -> 200 OK' "$work/images.log"; then
  echo "the image classifier example should have named the corrupt row and answered a scoring request" >&2
  exit 1
fi

step "Ballista scheduler and executor examples: both listen, a bad registry is named"
listening() {
  "$MLOPS_PYTHON" - "$@" <<'PY'
import socket, sys, time
deadline = time.time() + 60
for port in map(int, sys.argv[1:]):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit(f"nothing listens on port {port} within 60 s")
            time.sleep(0.2)
PY
}
scheduler_port=$(free_port) flight_port=$(free_port) grpc_port=$(free_port)
"$CARGO_TARGET_DIR/debug/examples/ballista_scheduler" --registry "$work/cluster-registry" --bind-host 127.0.0.1 \
  --external-host 127.0.0.1 --port "$scheduler_port" >"$work/scheduler.log" 2>&1 &
server_pids+=($!)
listening "$scheduler_port"
"$CARGO_TARGET_DIR/debug/examples/ballista_executor" --registry "$work/cluster-registry" --scheduler-host 127.0.0.1 \
  --scheduler-port "$scheduler_port" --bind-host 127.0.0.1 --external-host 127.0.0.1 --port "$flight_port" \
  --grpc-port "$grpc_port" --vcores 1 --work-dir "$work/executor" >"$work/executor.log" 2>&1 &
server_pids+=($!)
listening "$flight_port" "$grpc_port"
status=0
"$CARGO_TARGET_DIR/debug/examples/ballista_executor" --registry ftp://nowhere/models 2>"$work/executor-error.log" \
  || status=$?
if [ "$status" != 1 ] || ! grep -q 'ftp://nowhere/models' "$work/executor-error.log"; then
  echo "the executor example should exit with 1 naming a registry it cannot open (got $status)" >&2
  exit 1
fi

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "all checks passed"
echo "tests: $passed passed, $failed failed"
