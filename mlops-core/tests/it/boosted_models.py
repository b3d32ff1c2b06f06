"""Gradient-boosted models trained by XGBoost and LightGBM for the Rust tests
(boosted.rs), with the predictions the libraries and MLflow's pyfunc make of them.

    python boosted_models.py OUT_DIR ROWS

Writes OUT_DIR/input.parquet (numeric features x0..x5 with missing values and exact
zeros, and a string column `color` with unseen categories and nulls) and, per model,
OUT_DIR/<name>/ with the library's own files (model.json and model.ubj for XGBoost,
model.lgb for LightGBM), an MLflow model directory `mlflow/` (mlflow.<library>.save_model
with a signature and an input example) and expected.json: the margins (raw scores) and
predictions of the library's own predictor, and pyfunc's predictions, each flattened
row-major. OUT_DIR/models.json lists the models.
"""

import json
import sys
import warnings
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow.models import infer_signature

warnings.filterwarnings("ignore")

NUMERIC = [f"x{i}" for i in range(6)]
COLORS = ["red", "green", "blue", "teal", "amber"]


def frames(rows, seed):
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, len(NUMERIC)))
    numbers[rng.random(numbers.shape) < 0.08] = np.nan
    numbers[rng.random(numbers.shape) < 0.05] = 0.0
    frame = pd.DataFrame(numbers, columns=NUMERIC)
    color = rng.choice(COLORS + ["purple"], size=rows, p=[0.2, 0.2, 0.2, 0.2, 0.15, 0.05]).astype(object)
    color[rng.random(rows) < 0.05] = None
    frame["color"] = color
    x = frame[NUMERIC].fillna(0.0).to_numpy()
    effect = pd.Series(frame["color"]).map({"red": 1.5, "green": -1.0, "blue": 0.5}).fillna(0.0).to_numpy()
    score = x[:, 0] * 1.2 - x[:, 1] + 0.8 * x[:, 2] * x[:, 3] + np.sin(x[:, 4]) + effect + rng.normal(0, 0.5, rows)
    return frame, score


def categorical(frame):
    """The frame as LightGBM trains on it: `color` a pandas category of the known colors."""
    out = frame.copy()
    out["color"] = pd.Categorical(out["color"], categories=COLORS)
    return out


def write_expected(out, name, margin, prediction, pyfunc, pyfunc_note=None):
    expected = {
        "margin": np.asarray(margin, dtype=np.float64).ravel().tolist(),
        "prediction": np.asarray(prediction, dtype=np.float64).ravel().tolist(),
        "width": int(np.asarray(prediction).shape[1]) if np.asarray(prediction).ndim == 2 else 1,
        "pyfunc": None if pyfunc is None else np.asarray(pyfunc, dtype=np.float64).ravel().tolist(),
        "pyfunc_note": pyfunc_note,
    }
    (out / name / "expected.json").write_text(json.dumps(expected))


def pyfunc_predict(directory, frame):
    return np.asarray(mlflow.pyfunc.load_model(str(directory)).predict(frame))


def xgboost_models(out, train, labels, test, models):
    features = train[NUMERIC]
    binary = (labels > 0).astype(int)
    classes = np.digitize(labels, [-1.0, 1.0])
    specs = [
        ("xgb_binary", {"objective": "binary:logistic"}, binary),
        ("xgb_regressor", {"objective": "reg:squarederror"}, labels),
        ("xgb_multiclass", {"objective": "multi:softprob", "num_class": 3}, classes),
        ("xgb_softmax", {"objective": "multi:softmax", "num_class": 3}, classes),
        ("xgb_logitraw", {"objective": "binary:logitraw"}, binary),
        ("xgb_reg_logistic", {"objective": "reg:logistic"}, 1.0 / (1.0 + np.exp(-labels))),
        ("xgb_poisson", {"objective": "count:poisson"}, np.round(np.exp(labels / 3))),
    ]
    test_matrix = xgb.DMatrix(test[NUMERIC])
    for name, params, target in specs:
        booster = xgb.train(
            {**params, "max_depth": 5, "eta": 0.3, "nthread": 1, "seed": 7},
            xgb.DMatrix(features, label=target),
            num_boost_round=40,
        )
        directory = out / name
        directory.mkdir()
        booster.save_model(directory / "model.json")
        booster.save_model(directory / "model.ubj")
        prediction = booster.predict(test_matrix)
        signature = infer_signature(test[NUMERIC].head(50), prediction[:50])
        mlflow.xgboost.save_model(
            booster, directory / "mlflow", signature=signature, input_example=test[NUMERIC].head(3)
        )
        margin = booster.predict(test_matrix, output_margin=True)
        pyfunc = pyfunc_predict(directory / "mlflow", test[NUMERIC])
        write_expected(out, name, margin, prediction, pyfunc)
        models.append({"name": name, "library": "xgboost", "output": "booster"})

    # The scikit-learn API with early stopping: pyfunc predicts labels with the trees up
    # to the best iteration.
    name = "xgb_classifier"
    split = len(features) * 3 // 4
    classifier = xgb.XGBClassifier(
        n_estimators=300, max_depth=4, learning_rate=0.3, early_stopping_rounds=5, n_jobs=1, random_state=7
    )
    classifier.fit(
        features[:split], binary[:split], eval_set=[(features[split:], binary[split:])], verbose=False
    )
    assert classifier.best_iteration + 1 < classifier.get_booster().num_boosted_rounds(), "early stopping stopped"
    directory = out / name
    directory.mkdir()
    labels_out = classifier.predict(test[NUMERIC])
    mlflow.xgboost.save_model(
        classifier,
        directory / "mlflow",
        signature=infer_signature(test[NUMERIC].head(50), labels_out[:50]),
        input_example=test[NUMERIC].head(3),
    )
    margin = classifier.predict(test[NUMERIC], output_margin=True)
    pyfunc = pyfunc_predict(directory / "mlflow", test[NUMERIC])
    write_expected(out, name, margin, labels_out, pyfunc)
    models.append({"name": name, "library": "xgboost", "output": "classifier"})

    # Categorical splits, which the Rust flavor refuses naming the feature.
    name = "xgb_categorical"
    directory = out / name
    directory.mkdir()
    frame = categorical(train)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgb.DMatrix(frame, label=binary, enable_categorical=True),
        num_boost_round=5,
    )
    booster.save_model(directory / "model.json")
    models.append({"name": name, "library": "xgboost", "output": "refused"})


def lightgbm_models(out, train, labels, test, models):
    frame, test_frame = categorical(train), categorical(test)
    binary = (labels > 0).astype(int)
    classes = np.digitize(labels, [-1.0, 1.0])
    common = {"num_leaves": 31, "learning_rate": 0.2, "verbose": -1, "num_threads": 1, "seed": 7}
    specs = [
        ("lgb_binary", {"objective": "binary"}, binary, True),
        ("lgb_regression", {"objective": "regression"}, labels, True),
        ("lgb_multiclass", {"objective": "multiclass", "num_class": 3}, classes, True),
        ("lgb_zero_missing", {"objective": "regression", "zero_as_missing": True}, labels, False),
        ("lgb_no_missing", {"objective": "binary", "use_missing": False}, binary, False),
        ("lgb_poisson", {"objective": "poisson"}, np.round(np.exp(labels / 3)), True),
    ]
    for name, params, target, with_color in specs:
        columns = NUMERIC + (["color"] if with_color else [])
        booster = lgb.train({**common, **params}, lgb.Dataset(frame[columns], label=target), num_boost_round=40)
        directory = out / name
        directory.mkdir()
        booster.save_model(directory / "model.lgb")
        prediction = booster.predict(test_frame[columns])
        margin = booster.predict(test_frame[columns], raw_score=True)
        signature = infer_signature(test[columns].head(50), prediction[:50])
        mlflow.lightgbm.save_model(
            booster, directory / "mlflow", signature=signature, input_example=test[columns].head(3)
        )
        note = None
        try:
            pyfunc = pyfunc_predict(directory / "mlflow", test_frame[columns] if with_color else test[columns])
        except Exception as error:  # pyfunc refuses a category column its signature calls a string
            pyfunc, note = None, f"pyfunc cannot score this frame: {type(error).__name__}: {error}"[:300]
        write_expected(out, name, margin, prediction, pyfunc, note)
        models.append({"name": name, "library": "lightgbm", "output": "booster", "color": with_color})

    # A scikit-learn model, which MLflow pickles: refused with the way out.
    name = "lgb_sklearn"
    classifier = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(train[NUMERIC], binary)
    mlflow.lightgbm.save_model(classifier, out / name / "mlflow")
    models.append({"name": name, "library": "lightgbm", "output": "refused"})


def main():
    out, rows = Path(sys.argv[1]), int(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    train, labels = frames(rows, seed=1)
    test, _ = frames(rows, seed=2)
    test.to_parquet(out / "input.parquet", index=False)
    models = []
    xgboost_models(out, train, labels, test, models)
    lightgbm_models(out, train, labels, test, models)
    (out / "models.json").write_text(
        json.dumps({"models": models, "xgboost": xgb.__version__, "lightgbm": lgb.__version__})
    )


if __name__ == "__main__":
    main()
