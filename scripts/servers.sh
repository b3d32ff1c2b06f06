# shellcheck shell=bash
# Sourced by the scripts that start test servers on loopback. Needs python_env (from
# scripts/python-env.sh) to have run. Started servers' pids are kept in server_pids;
# stop_servers ends them.

server_pids=()

stop_servers() {
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}

free_port() {
  "$MLOPS_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for URL [SECONDS]: waits until URL answers over HTTP (any status).
wait_for() {
  "$MLOPS_PYTHON" - "$1" "${2:-60}" <<'PY'
import sys, time, urllib.error, urllib.request
url, limit = sys.argv[1], float(sys.argv[2])
deadline = time.time() + limit
while True:
    try:
        urllib.request.urlopen(url, timeout=2)
        break
    except urllib.error.HTTPError:
        break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"no answer from {url} within {limit:.0f} s")
        time.sleep(0.3)
PY
}

# start_s3 LOG_DIR BUCKET: moto_server on a free port, with BUCKET created; exports
# MLOPS_S3_ENDPOINT and MLOPS_S3_BUCKET.
start_s3() {
  local port
  port=$(free_port)
  "$(dirname "$MLOPS_PYTHON")/moto_server" -H 127.0.0.1 -p "$port" > "$1/moto.log" 2>&1 &
  server_pids+=($!)
  export MLOPS_S3_ENDPOINT="http://127.0.0.1:$port" MLOPS_S3_BUCKET="$2"
  wait_for "$MLOPS_S3_ENDPOINT/"
  "$MLOPS_PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"))' \
    "$MLOPS_S3_ENDPOINT/$MLOPS_S3_BUCKET"
  echo "S3-compatible server (moto) at $MLOPS_S3_ENDPOINT, bucket $MLOPS_S3_BUCKET"
}

# start_mlflow DIR: an MLflow tracking server (SQLite backend, artifacts served through
# its proxy from DIR/artifacts) on a free port; exports MLOPS_MLFLOW_URI. It takes a while
# to boot: start it first, start other servers, then wait_for_mlflow.
start_mlflow() {
  local port
  port=$(free_port)
  "$(dirname "$MLOPS_PYTHON")/mlflow" server --backend-store-uri "sqlite:///$1/mlflow.db" \
    --artifacts-destination "$1/artifacts" --host 127.0.0.1 --port "$port" > "$1/mlflow.log" 2>&1 &
  server_pids+=($!)
  export MLOPS_MLFLOW_URI="http://127.0.0.1:$port"
}

wait_for_mlflow() {
  wait_for "$MLOPS_MLFLOW_URI/health" 180
  echo "MLflow tracking server at $MLOPS_MLFLOW_URI"
}
