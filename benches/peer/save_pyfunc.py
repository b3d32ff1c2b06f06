"""Saves the MLflow pyfunc transactions model (the pipeline of pyfunc_batch.py, trained on
the same train.parquet) to a directory, for `mlflow models serve`.

    python save_pyfunc.py DATA_DIR MODEL_DIR
"""

import sys
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from pyfunc_batch import train_wrapper


def save(data_dir, model_dir):
    """Trains the wrapper on DATA_DIR/train.parquet and saves it to `model_dir`."""
    wrapper, signature, example = train_wrapper(pd.read_parquet(data_dir / "train.parquet"))
    # The wrapper's class lives in pyfunc_batch.py, which the server must import too.
    mlflow.pyfunc.save_model(
        model_dir,
        python_model=wrapper,
        signature=signature,
        input_example=example,
        code_paths=[str(Path(__file__).with_name("pyfunc_batch.py"))],
    )


def main():
    data_dir, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
    save(data_dir, model_dir)
    print(model_dir)


if __name__ == "__main__":
    main()
