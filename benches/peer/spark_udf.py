"""What Spark users run to score a table: `mlflow.pyfunc.spark_udf` over the MLflow pyfunc
transactions model (the pipeline of pyfunc_batch.py, trained on the same train.parquet),
on local Spark with one worker thread per core, scoring the same score.parquet as the Rust
benchmark (benches/sql_scoring.rs). The rows are cached in Spark's memory first, as the
Rust benchmark holds them in memory, and every run computes every prediction (written to
Spark's `noop` sink). Prints rows/s as JSON.

    python spark_udf.py DATA_DIR [--repeat N]
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow.pyfunc
import pyspark
from pyspark.sql import SparkSession
from pyspark.sql.functions import struct

from pyfunc_batch import CATEGORICAL, NUMERIC
from save_pyfunc import save
from timing import timed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    # Spark's Python workers run this interpreter, which has the model's libraries.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("mlops-sql-scoring-peer")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.driver.memory", "6g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        save(args.data_dir, path)
        predict = mlflow.pyfunc.spark_udf(spark, str(path), result_type="double", env_manager="local")
        frame = spark.read.parquet(str(args.data_dir / "score.parquet")).repartition(cores).cache()
        rows = frame.count()
        columns = CATEGORICAL + NUMERIC
        scored = frame.withColumn("prediction", predict(struct(*columns)))

        def run():
            scored.write.format("noop").mode("overwrite").save()

        median, seconds = timed(args.repeat, run)
        assert scored.filter(scored.prediction.isNull()).count() == 0
    spark.stop()
    print(
        json.dumps(
            {
                "tool": "mlflow.pyfunc.spark_udf",
                "mlflow": mlflow.__version__,
                "spark": pyspark.__version__,
                "cores": cores,
                "rows": rows,
                "median_seconds": median,
                "rows_per_second": rows / median,
                "runs": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
