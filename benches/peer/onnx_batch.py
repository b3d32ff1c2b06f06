"""The ONNX batch-scoring peers: a scikit-learn pipeline (one-hot Product and CustomerID,
scaled numbers, logistic regression) exported with skl2onnx and saved by MLflow, scored by
`mlflow.pyfunc` and by a bare `onnxruntime.InferenceSession` at the same thread count as
the Rust benchmark (benches/onnx_scoring.rs), on the same Parquet file.

    python onnx_batch.py prepare DATA_DIR MODEL_DIR
        Trains on DATA_DIR/train.parquet and saves the MLflow model directory MODEL_DIR
        (named (-1, 1) tensor inputs, the signature pyfunc can feed; a single-threaded
        onnxruntime session in its options would not be a fair peer, so none is set).
    python onnx_batch.py time DATA_DIR MODEL_DIR [--threads N] [--repeat N]
        Times both on DATA_DIR/score.parquet and prints JSON.
"""

import argparse
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Schema, TensorSpec
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from timing import timed

CATEGORICAL = ["Product", "CustomerID"]
NUMERIC = ["Amount", "MaxProductAmount", "MaxDifferenceRatio", "transactionCount"]
LABEL = "Label"


def prepare(data_dir, model_dir):
    train = pd.read_parquet(data_dir / "train.parquet")
    features = train[CATEGORICAL + NUMERIC].astype({c: np.float32 for c in NUMERIC})
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                        ("numeric", StandardScaler(), NUMERIC),
                    ]
                ),
            ),
            ("model", LogisticRegression(C=1.0, max_iter=50)),
        ]
    ).fit(features, train[LABEL])
    graph = convert_sklearn(
        pipeline,
        initial_types=[("Product", StringTensorType([None, 1])), ("CustomerID", Int64TensorType([None, 1]))]
        + [(c, FloatTensorType([None, 1])) for c in NUMERIC],
    )
    signature = ModelSignature(
        inputs=Schema(
            [TensorSpec(np.dtype(object), (-1, 1), "Product"), TensorSpec(np.dtype(np.int64), (-1, 1), "CustomerID")]
            + [TensorSpec(np.dtype(np.float32), (-1, 1), c) for c in NUMERIC]
        )
    )
    mlflow.onnx.save_model(graph, model_dir, signature=signature, pip_requirements=["onnx", "onnxruntime"])


def feeds(frame):
    out = {"Product": frame[["Product"]].to_numpy(dtype=object), "CustomerID": frame[["CustomerID"]].to_numpy(dtype=np.int64)}
    for c in NUMERIC:
        out[c] = frame[[c]].to_numpy(dtype=np.float32)
    return out


def time_peers(data_dir, model_dir, threads, repeat):
    frame = pd.read_parquet(data_dir / "score.parquet")
    # What a user hands pyfunc: the frame, with the numbers as the model takes them.
    frame = frame.astype({c: np.float32 for c in NUMERIC})
    model = mlflow.pyfunc.load_model(str(model_dir))
    pyfunc_median, pyfunc_runs = timed(repeat, lambda: model.predict(frame))

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])
    ready = feeds(frame)
    run_median, run_runs = timed(repeat, lambda: session.run(None, ready))
    fed_median, _ = timed(repeat, lambda: session.run(None, feeds(frame)))
    rows = len(frame)
    print(
        json.dumps(
            {
                "rows": rows,
                "threads": threads,
                "mlflow": mlflow.__version__,
                "onnxruntime": ort.__version__,
                "pyfunc_seconds": pyfunc_median,
                "pyfunc_runs": pyfunc_runs,
                "onnxruntime_run_seconds": run_median,
                "onnxruntime_run_runs": run_runs,
                "onnxruntime_with_feeds_seconds": fed_median,
            }
        )
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["prepare", "time"])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.data_dir, args.model_dir)
    else:
        time_peers(args.data_dir, args.model_dir, args.threads, args.repeat)


if __name__ == "__main__":
    main()
