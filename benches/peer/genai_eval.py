"""The MLflow peer of benches/genai_eval.rs: mlflow.evaluate with MLflow's
answer_correctness judge metric (10 judge workers, MLflow's default) against the same
OpenAI-compatible judge, on the same questions and answers.

    python genai_eval.py --judge-url http://127.0.0.1:8765/v1 --rows 200

Prints one line: `rows=<n> seconds=<s> rows_per_second=<r> scored=<k>`.
"""

import argparse
import os
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def questions(rows):
    # The same rows as benches/src/lib.rs `genai_rows`.
    ids = [f"q{i:05}" for i in range(rows)]
    reference = [f"Answer {i} names the capital, the river and the population of the country." for i in ids]
    answer = [" ".join(r.split()[: 4 + (n % 9)]) for n, r in enumerate(reference)]
    question = [f"Tell me about country {i}." for i in ids]
    return question, reference, answer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--judge-url", required=True)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--workers", type=int, default=10)
    args = parser.parse_args()

    os.environ["OPENAI_API_BASE"] = args.judge_url
    os.environ["OPENAI_API_KEY"] = "unused"
    import mlflow
    import pandas as pd
    from mlflow.metrics.genai import answer_correctness

    mlflow.set_tracking_uri("sqlite:///" + os.path.join(tempfile.mkdtemp(), "mlflow.db"))
    question, reference, answer = questions(args.rows)
    data = pd.DataFrame({"inputs": question, "predictions": answer, "targets": reference})
    metric = answer_correctness(model="openai:/judge", max_workers=args.workers)
    started = time.perf_counter()
    with mlflow.start_run():
        result = mlflow.evaluate(
            data=data, predictions="predictions", targets="targets", extra_metrics=[metric], evaluators="default"
        )
    seconds = time.perf_counter() - started
    scores = result.tables["eval_results_table"]["answer_correctness/v1/score"]
    print(f"rows={args.rows} seconds={seconds:.3f} rows_per_second={args.rows / seconds:.1f} scored={scores.notna().sum()}")


if __name__ == "__main__":
    main()
