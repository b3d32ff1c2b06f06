"""The streaming path a Python team without Spark picks: for each new Parquet file, an
MLflow pyfunc model (scikit-learn pipeline, as in pyfunc_batch.py) predicts, the scoring
columns are added, and the `deltalake` package appends the rows to a Delta table.

It reads the same files as benches/streaming.rs and prints rows/s and the per-file
latency (p50, p99) as JSON.

    python stream_delta.py DATA_DIR [--repeat N]
"""

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from deltalake import write_deltalake

from pyfunc_batch import CATEGORICAL, NUMERIC, train_wrapper


def stream_once(model, files, table):
    latencies = []
    rows = 0
    for path in files:
        started = time.perf_counter()
        frame = pd.read_parquet(path)
        scored = frame.copy()
        scored["prediction"] = model.predict(frame[CATEGORICAL + NUMERIC])["prediction"].to_numpy()
        scored["model_name"] = "transactions"
        scored["model_version"] = 1
        scored["scored_at"] = datetime.now(timezone.utc)
        write_id = uuid.uuid4().hex
        scored["row_id"] = [f"{write_id}-{i}" for i in range(len(scored))]
        write_deltalake(table, scored, mode="append")
        latencies.append(time.perf_counter() - started)
        rows += len(frame)
    return rows, latencies


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    files = sorted((args.data_dir / "stream-input").glob("part-*.parquet"))
    assert files, f"no input files under {args.data_dir / 'stream-input'}"
    wrapper, signature, example = train_wrapper(pd.read_parquet(args.data_dir / "train.parquet"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        mlflow.pyfunc.save_model(path, python_model=wrapper, signature=signature, input_example=example)
        model = mlflow.pyfunc.load_model(str(path))
        runs, latencies = [], []
        for run in range(args.repeat):
            started = time.perf_counter()
            rows, run_latencies = stream_once(model, files, str(Path(tmp) / f"table-{run}"))
            runs.append(time.perf_counter() - started)
            latencies.extend(run_latencies)

    latencies.sort()
    median = statistics.median(runs)
    print(
        json.dumps(
            {
                "tool": "mlflow.pyfunc + deltalake",
                "mlflow": mlflow.__version__,
                "rows": rows,
                "median_seconds": median,
                "rows_per_second": rows / median,
                "p50_seconds": latencies[len(latencies) // 2],
                "p99_seconds": latencies[round((len(latencies) - 1) * 0.99)],
            }
        )
    )


if __name__ == "__main__":
    main()
