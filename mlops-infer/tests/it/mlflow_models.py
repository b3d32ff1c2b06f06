"""What a data scientist does in Python against the tracking server the tests start, for
the Rust tests to follow.

    python mlflow_models.py TRACKING_URI log NAME VERSION_SEED
        Trains a scikit-learn pipeline (one-hot categories, imputed and scaled amounts,
        logistic regression; VERSION_SEED changes the data and so the weights), exports it
        with skl2onnx, logs it with `mlflow.onnx.log_model(registered_model_name=NAME)`
        and points `champion` at the new version. Prints the version, the rows of a
        scoring request and onnxruntime's answer to them (one `(n, 1)` array per input, as
        the graph takes them; a missing string as "nan").

    python mlflow_models.py TRACKING_URI info NAME VERSION
        Prints what Python reads back of a version: `MlflowClient.get_model_version` and
        the signature `mlflow.models.get_model_info` finds in its MLmodel.
"""

import json
import os
import sys
import tempfile

import mlflow
import numpy as np
import onnxruntime as ort
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def frame(rng, rows):
    products = np.array(["Product A", "Product B", "Product C"], dtype=object)
    product = products[rng.integers(0, 3, rows)]
    label = rng.integers(0, 2, rows)
    amount = (np.where(product == "Product B", 30.0, 90.0) * (1 + label) + rng.normal(0, 20, rows)).astype(np.float32)
    data = pd.DataFrame(
        {
            "Product": pd.array(product, dtype=object),
            "CustomerID": rng.integers(1234, 1261, rows).astype(np.int64),
            "Amount": amount,
        }
    )
    return data, label


def request_rows():
    """Rows of a scoring request: ordinary ones, a missing product and amount, and an unseen
    product and customer."""
    return pd.DataFrame(
        {
            "Product": pd.array(["Product A", "Product C", None, "Product Z", "Product B"], dtype=object),
            "CustomerID": np.array([1240, 1255, 1236, 99999, 1250], dtype=np.int64),
            "Amount": np.array([120.5, 35.0, np.nan, 80.0, 61.25], dtype=np.float32),
        }
    )


def log(uri, name, seed):
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("python-models")
    rng = np.random.default_rng(seed)
    train, label = frame(rng, 3000)
    numbers = Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())])
    features = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), ["Product", "CustomerID"]), ("numbers", numbers, ["Amount"])]
    )
    model = Pipeline([("features", features), ("classifier", LogisticRegression(C=0.1 * seed, max_iter=500))]).fit(train, label)
    graph = convert_sklearn(
        model,
        initial_types=[
            ("Product", StringTensorType([None, 1])),
            ("CustomerID", Int64TensorType([None, 1])),
            ("Amount", FloatTensorType([None, 1])),
        ],
    )
    with mlflow.start_run():
        info = mlflow.onnx.log_model(
            graph,
            name="model",
            registered_model_name=name,
            signature=infer_signature(train.head(20)),
            input_example=train.head(3),
            pip_requirements=["onnx", "onnxruntime"],
        )
    version = info.registered_model_version
    MlflowClient().set_registered_model_alias(name, "champion", version)
    rows = request_rows()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        with open(path, "wb") as f:
            f.write(graph.SerializeToString())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        labels, probabilities = session.run(
            None,
            {
                "Product": rows[["Product"]].fillna("nan").to_numpy(dtype=object),
                "CustomerID": rows[["CustomerID"]].to_numpy(dtype=np.int64),
                "Amount": rows[["Amount"]].to_numpy(dtype=np.float32),
            },
        )
    records = json.loads(rows.to_json(orient="records"))
    print(
        json.dumps(
            {
                "version": int(version),
                "records": records,
                "labels": [int(v) for v in labels],
                "probabilities": [[float(p[0]), float(p[1])] for p in probabilities],
            }
        )
    )


def info(uri, name, version):
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    found = client.get_model_version(name, version)
    model_info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    signature = model_info.signature
    print(
        json.dumps(
            {
                "source": found.source,
                "run_id": found.run_id,
                "flavors": sorted(model_info.flavors),
                "inputs": signature.inputs.to_dict() if signature else None,
                "model_uri": model_info.model_uri,
            }
        )
    )


def main():
    uri, command = sys.argv[1], sys.argv[2]
    if command == "log":
        log(uri, sys.argv[3], int(sys.argv[4]))
    elif command == "info":
        info(uri, sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
