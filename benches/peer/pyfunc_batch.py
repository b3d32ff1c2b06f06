"""The batch-scoring path users pick today: an MLflow pyfunc wrapper around a scikit-learn
OneHotEncoder + StandardScaler + LogisticRegression pipeline, loaded with
mlflow.pyfunc.load_model and called with predict on a pandas frame read from Parquet.

It trains on the same train.parquet and scores the same score.parquet as the Rust
benchmark (benches/batch_scoring.rs), and prints rows/s as JSON.

    python pyfunc_batch.py DATA_DIR [--repeat N]
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CATEGORICAL = ["Product", "CustomerID"]
NUMERIC = ["Amount", "MaxProductAmount", "MaxDifferenceRatio", "transactionCount"]
LABEL = "Label"
# Same settings as benches/src/lib.rs: linfa's alpha is the L2 strength, sklearn's C its inverse.
L2_PENALTY = 1.0
MAX_ITERATIONS = 50


class TransactionsModel(mlflow.pyfunc.PythonModel):
    """The reference workflow's wrapper: preprocessing inside, probability of label 1 out."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def predict(self, context, model_input, params=None):
        features = model_input.drop(columns=["TransactionTimestamp"], errors="ignore")
        return pd.DataFrame({"prediction": self.pipeline.predict_proba(features)[:, 1]})


def train_wrapper(train):
    """Fits the pipeline on `train`; returns the pyfunc wrapper, its signature and input example."""
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
            ("model", LogisticRegression(C=1.0 / L2_PENALTY, max_iter=MAX_ITERATIONS)),
        ]
    )
    pipeline.fit(train[CATEGORICAL + NUMERIC], train[LABEL])
    example = train[CATEGORICAL + NUMERIC].head(5)
    wrapper = TransactionsModel(pipeline)
    return wrapper, infer_signature(example, wrapper.predict(None, example)), example


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    wrapper, signature, example = train_wrapper(pd.read_parquet(args.data_dir / "train.parquet"))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        mlflow.pyfunc.save_model(path, python_model=wrapper, signature=signature, input_example=example)
        model = mlflow.pyfunc.load_model(str(path))
        frame = pd.read_parquet(args.data_dir / "score.parquet")
        model.predict(frame.head(1000))  # warm-up
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            predictions = model.predict(frame)
            seconds.append(time.perf_counter() - started)
        assert len(predictions) == len(frame)

    median = statistics.median(seconds)
    print(
        json.dumps(
            {
                "tool": "mlflow.pyfunc",
                "mlflow": mlflow.__version__,
                "rows": len(frame),
                "median_seconds": median,
                "rows_per_second": len(frame) / median,
                "runs": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
