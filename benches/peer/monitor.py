"""Monitoring an inference table the way a Python user would write it: pandas groups by
hour and model version, NumPy statistics and histograms over the baseline's deciles, SciPy
for Jensen-Shannon, Kolmogorov-Smirnov and Wasserstein, scikit-learn for quality.

It computes what benches/monitoring.rs computes (mlops_eval::monitor::Monitor): per window
and version, counts, null rates, summaries and distinct counts of every watched column,
PSI / Jensen-Shannon / KS / Wasserstein against the baseline and the version's previous
window, and accuracy, precision, recall, F1, log loss and ROC AUC on the labeled rows. It
reads the same Parquet files and prints the median seconds of the computation (the reads
excluded, as in the Rust benchmark) as JSON.

    python monitor.py DATA_DIR [--repeat N]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score

NUMERIC = ["prediction", "amount", "items", "ratio"]
CATEGORICAL = ["product"]
FLOOR = 1e-4


def psi(reference, current):
    reference, current = np.maximum(reference, FLOOR), np.maximum(current, FLOOR)
    return float(np.sum((current - reference) * np.log(current / reference)))


def deciles(values):
    return np.unique(np.quantile(values, np.arange(1, 10) / 10))


def shares(values, edges):
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def numeric_drift(reference, current, edges=None, before=None):
    """Drift of `current` from `reference`; the baseline's edges and shares come precomputed."""
    if edges is None:
        edges = deciles(reference)
        before = shares(reference, edges)
    now = shares(current, edges)
    return {
        "psi": psi(before, now),
        "js_distance": float(jensenshannon(before, now, base=2)),
        "ks_statistic": float(ks_2samp(reference, current).statistic),
        "wasserstein": float(wasserstein_distance(reference, current)),
    }


def category_shares(values, categories):
    counts = values.value_counts()
    return np.array([counts.get(c, 0) for c in categories], dtype=float) / max(len(values), 1)


def monitor(table, baseline):
    rows = []
    table = table.assign(window=table["scored_at"].dt.floor("1h"))
    categories = {c: sorted(set(baseline[c].dropna()) | set(table[c].dropna())) for c in CATEGORICAL}
    base_numeric = {c: baseline[c].dropna().to_numpy() for c in NUMERIC}
    base_edges = {c: deciles(base_numeric[c]) for c in NUMERIC}
    base_numeric_shares = {c: shares(base_numeric[c], base_edges[c]) for c in NUMERIC}
    base_shares = {c: category_shares(baseline[c].dropna(), categories[c]) for c in CATEGORICAL}
    previous = {}
    for (window, version), group in table.groupby(["window", "model_version"], sort=True):
        out = {"window": window, "version": version, "count": len(group)}
        current = {}
        for c in NUMERIC:
            values = group[c].to_numpy(dtype=float)
            valid = values[~np.isnan(values)]
            current[c] = valid
            out[f"{c}/null_rate"] = 1 - len(valid) / len(values)
            if len(valid):
                out[f"{c}/summary"] = (
                    valid.mean(), valid.std(ddof=1) if len(valid) > 1 else 0.0, valid.min(),
                    *np.quantile(valid, [0.25, 0.5, 0.75]), valid.max(), len(np.unique(valid)),
                )
                out[f"{c}/baseline"] = numeric_drift(base_numeric[c], valid, base_edges[c], base_numeric_shares[c])
                before = previous.get(version, {}).get(c)
                if before is not None and len(before):
                    out[f"{c}/previous"] = numeric_drift(before, valid)
        for c in CATEGORICAL:
            valid = group[c].dropna()
            current[c] = valid
            out[f"{c}/null_rate"] = 1 - len(valid) / len(group)
            out[f"{c}/distinct"] = valid.nunique()
            now = category_shares(valid, categories[c])
            out[f"{c}/baseline"] = (psi(base_shares[c], now), float(jensenshannon(base_shares[c], now, base=2)))
            before = previous.get(version, {}).get(c)
            if before is not None and len(before):
                then = category_shares(before, categories[c])
                out[f"{c}/previous"] = (psi(then, now), float(jensenshannon(then, now, base=2)))
        labeled = group[group["actual_label"].notna()]
        if len(labeled):
            truth, score = labeled["actual_label"].astype(int), labeled["prediction"]
            predicted = (score >= 0.5).astype(int)
            out["quality"] = {
                "accuracy": accuracy_score(truth, predicted),
                "precision": precision_score(truth, predicted, zero_division=0),
                "recall": recall_score(truth, predicted, zero_division=0),
                "f1": f1_score(truth, predicted, zero_division=0),
                "log_loss": log_loss(truth, score, labels=[0, 1]),
                "roc_auc": roc_auc_score(truth, score) if truth.nunique() == 2 else None,
            }
        previous[version] = current
        rows.append(out)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = pd.read_parquet(args.data_dir / "table.parquet")
    baseline = pd.read_parquet(args.data_dir / "baseline.parquet")
    times, groups = [], 0
    for _ in range(args.repeat):
        started = time.perf_counter()
        groups = len(monitor(table, baseline))
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(json.dumps({
        "rows": len(table),
        "groups": groups,
        "median_seconds": median,
        "rows_per_second": len(table) / median,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
    }))


if __name__ == "__main__":
    main()
