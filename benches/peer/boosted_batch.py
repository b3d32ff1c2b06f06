"""The gradient-boosted peers: XGBoost and LightGBM models of 500 trees of depth 8 over 30
features, scored by each library's own predictor (`Booster.inplace_predict` for XGBoost,
`Booster.predict` for LightGBM) at the same thread count as the Rust benchmark
(benches/boosted_scoring.rs) and by `mlflow.pyfunc`, on the same Parquet file.

    python boosted_batch.py prepare DATA_DIR ROWS
        Trains both models on 50,000 generated rows and saves them as MLflow model
        directories DATA_DIR/xgboost-model and DATA_DIR/lightgbm-model; writes ROWS rows to
        score to DATA_DIR/score.parquet (float32 features, 5% missing).
    python boosted_batch.py time DATA_DIR [--threads N] [--repeat N]
        Times the peers on DATA_DIR/score.parquet and prints JSON.
"""

import argparse
import json
import os
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow.models import infer_signature
from timing import timed

FEATURES = [f"f{i:02d}" for i in range(30)]
# MLOPS_BENCH_TREES makes smaller models (the benchmark in test mode).
TREES = int(os.environ.get("MLOPS_BENCH_TREES", "500"))
DEPTH = 8


def rows(count, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    filled = np.nan_to_num(x)
    signal = filled[:, :10] @ rng.normal(size=10) + np.sin(filled[:, 10] * filled[:, 11]) + filled[:, 12] ** 2
    label = (signal + rng.normal(0, 1, count) > np.median(signal)).astype(int)
    return pd.DataFrame(x, columns=FEATURES), label


def prepare(data_dir, count):
    data_dir.mkdir(parents=True, exist_ok=True)
    train, label = rows(50_000, seed=1)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": DEPTH, "eta": 0.05, "nthread": os.cpu_count(), "seed": 7},
        xgb.DMatrix(train, label=label),
        num_boost_round=TREES,
    )
    example = train.head(5)
    mlflow.xgboost.save_model(
        booster, data_dir / "xgboost-model", signature=infer_signature(example, booster.predict(xgb.DMatrix(example))),
        input_example=example,
    )
    lightgbm = lgb.train(
        {"objective": "binary", "max_depth": DEPTH, "num_leaves": 2**DEPTH, "learning_rate": 0.05, "verbose": -1,
         "min_data_in_leaf": 5},
        lgb.Dataset(train, label=label),
        num_boost_round=TREES,
    )
    mlflow.lightgbm.save_model(
        lightgbm, data_dir / "lightgbm-model", signature=infer_signature(example, lightgbm.predict(example)),
        input_example=example,
    )
    score, _ = rows(count, seed=2)
    score.to_parquet(data_dir / "score.parquet", index=False)


def time_peers(data_dir, threads, repeat):
    frame = pd.read_parquet(data_dir / "score.parquet")
    matrix = frame.to_numpy(dtype=np.float32)
    xgb_booster = xgb.Booster(model_file=str(data_dir / "xgboost-model" / "model.ubj"))
    xgb_booster.set_param({"nthread": threads})
    lgb_booster = lgb.Booster(model_file=str(data_dir / "lightgbm-model" / "model.lgb"))
    xgb_pyfunc = mlflow.pyfunc.load_model(str(data_dir / "xgboost-model"))
    lgb_pyfunc = mlflow.pyfunc.load_model(str(data_dir / "lightgbm-model"))
    one = frame.head(1)
    one_matrix = matrix[:1]
    result = {
        "rows": len(frame),
        "threads": threads,
        "xgboost": xgb.__version__,
        "lightgbm": lgb.__version__,
        "mlflow": mlflow.__version__,
        "xgboost_inplace_predict_seconds": timed(repeat, lambda: xgb_booster.inplace_predict(matrix))[0],
        "lightgbm_predict_seconds": timed(repeat, lambda: lgb_booster.predict(matrix, num_threads=threads))[0],
        "xgboost_pyfunc_seconds": timed(repeat, lambda: xgb_pyfunc.predict(frame))[0],
        "lightgbm_pyfunc_seconds": timed(repeat, lambda: lgb_pyfunc.predict(frame))[0],
    }
    # One row: the median of 2,000 calls, in microseconds.
    for name, run in [
        ("xgboost_one_row_us", lambda: xgb_booster.inplace_predict(one_matrix)),
        ("lightgbm_one_row_us", lambda: lgb_booster.predict(one_matrix, num_threads=1)),
        ("xgboost_pyfunc_one_row_us", lambda: xgb_pyfunc.predict(one)),
    ]:
        result[name] = timed(2000, run)[0] * 1e6
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["prepare", "time"])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("rows", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.data_dir, args.rows)
    else:
        time_peers(args.data_dir, args.threads, args.repeat)


if __name__ == "__main__":
    main()
