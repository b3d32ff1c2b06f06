"""What Python users do to find the model behind an alias: MlflowClient against an MLflow
tracking server. Registers a small pyfunc model, points `champion` at it, then times
get_model_version_by_alias and prints the latencies as JSON.

    python mlflow_alias.py TRACKING_URI [--calls N]
"""

import argparse
import json
import statistics
import time

import mlflow
import pandas as pd
from mlflow import MlflowClient


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"prediction": [0.5] * len(model_input)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("tracking_uri")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient()
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=Constant())
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "transactions")
    client.set_registered_model_alias("transactions", "champion", version.version)

    for _ in range(20):
        client.get_model_version_by_alias("transactions", "champion")
    seconds = []
    for _ in range(args.calls):
        started = time.perf_counter()
        client.get_model_version_by_alias("transactions", "champion")
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    print(
        json.dumps(
            {
                "tool": "MlflowClient.get_model_version_by_alias",
                "mlflow": mlflow.__version__,
                "calls": len(seconds),
                "median_seconds": statistics.median(seconds),
                "p99_seconds": seconds[int(len(seconds) * 0.99) - 1],
            }
        )
    )


if __name__ == "__main__":
    main()
