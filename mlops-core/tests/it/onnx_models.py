"""Trains scikit-learn models on generated data, exports them to ONNX with skl2onnx, saves
each as an MLflow model directory (mlflow.onnx.save_model), and writes the rows to score
and the predictions Python makes for them, for the Rust tests to reproduce.

    python onnx_models.py OUT_DIR [ROWS]

OUT_DIR/models.json lists the models; OUT_DIR/<name>/ holds `model/` (the MLflow model
directory), `input.parquet` and `expected.parquet`.

The reference predictions come from `mlflow.pyfunc.load_model(...).predict(...)`, except
for a graph that takes one input per column saved with the column signature
`infer_signature` makes of a frame: pyfunc hands each column over as a 1-D array, which
the graph's `[None, 1]` inputs refuse (and MLflow 3.17 with pandas 3 cannot make an ONNX
string tensor of a string column). That model is also saved with one named `(-1, 1)`
tensor per input, which pyfunc feeds; the column-signature copy is scored by onnxruntime
fed the same way, one `(n, 1)` array per input. A missing string is fed as "nan" (the
category skl2onnx gives scikit-learn's missing value), a missing number as NaN. Every
session runs single-threaded, so onnxruntime sums in one order.
"""

import json
import os
import sys

import mlflow
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, Schema, TensorSpec
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SINGLE_THREAD = {"intra_op_num_threads": 1, "inter_op_num_threads": 1}
# Named up front: MLflow otherwise infers them by inspecting the environment, which takes
# seconds per model.
REQUIREMENTS = ["onnx", "onnxruntime"]


def session(model_dir):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(os.path.join(model_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])


def transactions(rng, rows, unseen):
    """Rows shaped like the reference transactions: a product, a customer, amounts."""
    products = np.array(["Product A", "Product B", "Product C"], dtype=object)
    product = products[rng.integers(0, 3, rows)]
    customer = rng.integers(1234, 1261, rows).astype(np.int64)
    label = rng.integers(0, 2, rows)
    base = np.where(product == "Product C", 120.0, np.where(product == "Product B", 30.0, 80.0))
    amount = (base * (1.0 + 0.8 * label) + rng.normal(0, 25, rows)).astype(np.float32)
    ratio = (rng.random(rows) * (1 + label)).astype(np.float32)
    frame = pd.DataFrame(
        {
            "Product": pd.array(product, dtype=object),
            "CustomerID": customer,
            "Amount": amount,
            "MaxDifferenceRatio": ratio,
        }
    )
    if unseen:
        # Missing strings and numbers, and categories the model never saw.
        frame.loc[rng.random(rows) < 0.05, "Product"] = None
        frame.loc[rng.random(rows) < 0.03, "Product"] = "Product Z"
        frame.loc[rng.random(rows) < 0.03, "CustomerID"] = 99999
        frame.loc[rng.random(rows) < 0.05, "Amount"] = np.nan
        frame.loc[rng.random(rows) < 0.05, "MaxDifferenceRatio"] = np.nan
    return frame, label


def features(rng, rows, nan_share):
    x = rng.normal(0, 1, (rows, 6)).astype(np.float32)
    logits = x[:, 0] * 1.5 - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.2 * rng.normal(0, 1, rows)
    if nan_share:
        x[rng.random((rows, 6)) < nan_share] = np.nan
    return x, logits


def save(out, name, onnx_model, signature, input_example, frame, expected, reference, kind):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    mlflow.onnx.save_model(
        onnx_model,
        os.path.join(folder, "model"),
        signature=signature,
        input_example=input_example,
        onnx_session_options=SINGLE_THREAD,
        pip_requirements=REQUIREMENTS,
    )
    frame.to_parquet(os.path.join(folder, "input.parquet"), index=False)
    expected.to_parquet(os.path.join(folder, "expected.parquet"), index=False)
    return {"name": name, "reference": reference, "kind": kind}


def classifier_expected(labels, probabilities, classes):
    """The label column and one probability column per class (named p_<label>)."""
    out = {"label": np.asarray(labels)}
    for index, label in enumerate(classes):
        out[f"p_{label}"] = np.asarray(probabilities[:, index], dtype=np.float32)
    return pd.DataFrame(out)


def zipmap_rows(rows, classes):
    return np.array([[row[c] for c in classes] for row in rows], dtype=np.float32)


def pipeline_model(out, rng, rows):
    """The ColumnTransformer pipeline, saved twice: with the signature pyfunc can feed (one
    named `(-1, 1)` tensor per graph input), scored by pyfunc; and with the column signature
    `infer_signature` gives a frame, which pyfunc cannot feed (it hands each column over as
    a 1-D array), scored by onnxruntime fed one `(n, 1)` array per input."""
    train, label = transactions(rng, 4000, unseen=False)
    train.loc[rng.random(len(train)) < 0.05, "Amount"] = np.nan
    numeric = Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", StandardScaler())])
    transform = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), ["Product", "CustomerID"]),
            ("numbers", numeric, ["Amount", "MaxDifferenceRatio"]),
        ]
    )
    model = Pipeline([("features", transform), ("classifier", LogisticRegression(max_iter=500))])
    model.fit(train, label)
    graph = convert_sklearn(
        model,
        initial_types=[
            ("Product", StringTensorType([None, 1])),
            ("CustomerID", Int64TensorType([None, 1])),
            ("Amount", FloatTensorType([None, 1])),
            ("MaxDifferenceRatio", FloatTensorType([None, 1])),
        ],
    )
    score, _ = transactions(rng, rows, unseen=True)
    # The graph knows a missing product as the category "nan".
    fed = score.assign(Product=score["Product"].fillna("nan").astype(object))
    classes = [0, 1]

    tensors = ModelSignature(
        inputs=Schema(
            [
                TensorSpec(np.dtype(object), (-1, 1), "Product"),
                TensorSpec(np.dtype(np.int64), (-1, 1), "CustomerID"),
                TensorSpec(np.dtype(np.float32), (-1, 1), "Amount"),
                TensorSpec(np.dtype(np.float32), (-1, 1), "MaxDifferenceRatio"),
            ]
        )
    )
    entries = [save(out, "pipeline_lr", graph, tensors, None, score, pd.DataFrame(), "pyfunc", "classifier")]
    predicted = mlflow.pyfunc.load_model(os.path.join(out, "pipeline_lr", "model")).predict(fed)
    expected = classifier_expected(np.ravel(predicted["output_label"]), zipmap_rows(predicted["output_probability"], classes), classes)
    expected.to_parquet(os.path.join(out, "pipeline_lr", "expected.parquet"), index=False)

    columns = infer_signature(fed.head(5))
    entries.append(save(out, "pipeline_lr_columns", graph, columns, fed.head(5), score, pd.DataFrame(), "onnxruntime", "classifier"))
    feeds = {
        "Product": fed[["Product"]].to_numpy(dtype=object),
        "CustomerID": fed[["CustomerID"]].to_numpy(dtype=np.int64),
        "Amount": fed[["Amount"]].to_numpy(dtype=np.float32),
        "MaxDifferenceRatio": fed[["MaxDifferenceRatio"]].to_numpy(dtype=np.float32),
    }
    labels, probabilities = session(os.path.join(out, "pipeline_lr_columns", "model")).run(None, feeds)
    classifier_expected(labels, zipmap_rows(probabilities, classes), classes).to_parquet(
        os.path.join(out, "pipeline_lr_columns", "expected.parquet"), index=False
    )
    return entries


def tabular_models(out, rng, rows):
    entries = []
    x_train, logits = features(rng, 4000, 0.0)
    x_score, _ = features(rng, rows, 0.02)
    columns = [f"f{i}" for i in range(6)]
    frame = pd.DataFrame(x_score, columns=columns)
    train_frame = pd.DataFrame(x_train, columns=columns)
    binary = (logits > 0).astype(np.int64)
    three = np.digitize(logits, [-0.7, 0.7]).astype(np.int64)
    target = (logits * 3 + 10).astype(np.float32)
    classifiers = {
        "rf_binary": (RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0), binary),
        "rf_three": (RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0), three),
        "gb_binary": (GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0), binary),
        "gb_three": (GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), three),
        "mlp_binary": (MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=300, random_state=0), binary),
        "mlp_three": (MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0), three),
    }
    for name, (estimator, y) in classifiers.items():
        estimator.fit(x_train, y)
        graph = to_onnx(estimator, x_train[:1])
        signature = infer_signature(train_frame.head(5))
        entry = save(out, name, graph, signature, train_frame.head(5), frame, pd.DataFrame(), "pyfunc", "classifier")
        predicted = mlflow.pyfunc.load_model(os.path.join(out, name, "model")).predict(frame)
        classes = [int(c) for c in estimator.classes_]
        expected = classifier_expected(
            predicted["output_label"].to_numpy(), zipmap_rows(predicted["output_probability"], classes), classes
        )
        expected.to_parquet(os.path.join(out, name, "expected.parquet"), index=False)
        entries.append(entry)
    regressors = {
        "rf_regressor": RandomForestRegressor(n_estimators=30, max_depth=6, random_state=0),
        "gb_regressor": GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0),
    }
    for name, estimator in regressors.items():
        estimator.fit(x_train, target)
        graph = to_onnx(estimator, x_train[:1])
        signature = infer_signature(train_frame.head(5))
        entry = save(out, name, graph, signature, train_frame.head(5), frame, pd.DataFrame(), "pyfunc", "regressor")
        predicted = mlflow.pyfunc.load_model(os.path.join(out, name, "model")).predict(frame)
        expected = pd.DataFrame({"value": predicted["variable"].to_numpy(dtype=np.float32)})
        expected.to_parquet(os.path.join(out, name, "expected.parquet"), index=False)
        entries.append(entry)
        # The same trees in opset 5's encoding, which pyfunc's onnxruntime runs too.
        name_v5 = f"{name}_v5"
        entry = save(
            out, name_v5, tree_ensemble_v5(graph), signature, train_frame.head(5), frame, pd.DataFrame(), "pyfunc",
            "regressor",
        )
        predicted_v5 = mlflow.pyfunc.load_model(os.path.join(out, name_v5, "model")).predict(frame)
        values_v5 = predicted_v5["variable"].to_numpy(dtype=np.float32)
        assert np.allclose(values_v5, expected["value"], rtol=1e-5, equal_nan=True), "opset 5 scores as opset 3"
        pd.DataFrame({"value": values_v5}).to_parquet(os.path.join(out, name_v5, "expected.parquet"), index=False)
        entries.append(entry)
    return entries


V5_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4, "BRANCH_NEQ": 5}


def tree_ensemble_v5(model):
    """A copy of `model` with its TreeEnsembleRegressor rewritten as ai.onnx.ml opset 5's
    TreeEnsemble (no converter writes it yet): interior nodes and leaves listed apart,
    children named by index into one or the other, a root per tree, base values as an Add
    after it, as the operator's documentation describes the mapping."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    position = next(i for i, n in enumerate(graph.node) if n.op_type == "TreeEnsembleRegressor")
    old = graph.node[position]
    a = {attribute.name: helper.get_attribute_value(attribute) for attribute in old.attribute}
    keys = list(zip(a["nodes_treeids"], a["nodes_nodeids"]))
    modes = [m.decode() for m in a["nodes_modes"]]
    interior, leaves = {}, {}
    for key, mode in zip(keys, modes):
        table = leaves if mode == "LEAF" else interior
        table[key] = len(table)
    leaf_weight = {}
    for t, i, target, weight in zip(a["target_treeids"], a["target_nodeids"], a["target_ids"], a["target_weights"]):
        assert (t, i) not in leaf_weight, "one weight per leaf"
        leaf_weight[(t, i)] = (target, weight)
    branches = [k for k, (key, mode) in enumerate(zip(keys, modes)) if mode != "LEAF"]
    missing = a.get("nodes_missing_value_tracks_true", [0] * len(keys))
    fields = {f: [] for f in ["featureids", "modes", "splits", "truenodeids", "trueleafs", "falsenodeids",
                              "falseleafs", "missing"]}
    for k in branches:
        tree = keys[k][0]
        fields["featureids"].append(a["nodes_featureids"][k])
        fields["modes"].append(V5_MODES[modes[k]])
        fields["splits"].append(a["nodes_values"][k])
        fields["missing"].append(missing[k])
        for side in ("true", "false"):
            child = (tree, a[f"nodes_{side}nodeids"][k])
            is_leaf = child in leaves
            fields[f"{side}nodeids"].append(leaves[child] if is_leaf else interior[child])
            fields[f"{side}leafs"].append(int(is_leaf))
    ordered_leaves = sorted(leaves, key=leaves.get)
    roots = []
    for tree in dict.fromkeys(a["nodes_treeids"]):
        roots.append(interior[(tree, 0)])
    aggregate = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}[a.get("aggregate_function", b"SUM").decode()]
    transform = {"NONE": 0, "SOFTMAX": 1, "LOGISTIC": 2, "SOFTMAX_ZERO": 3, "PROBIT": 4}[
        a.get("post_transform", b"NONE").decode()
    ]
    base = np.asarray(a.get("base_values", []), dtype=np.float32)
    output = old.output[0]
    summed = output + "_trees" if base.size else output
    n = len(branches)
    node = helper.make_node(
        "TreeEnsemble", [old.input[0]], [summed], domain="ai.onnx.ml",
        n_targets=a.get("n_targets", 1), aggregate_function=aggregate, post_transform=transform,
        tree_roots=roots,
        nodes_featureids=fields["featureids"],
        nodes_modes=helper.make_tensor("nodes_modes", TensorProto.UINT8, [n], fields["modes"]),
        nodes_splits=helper.make_tensor("nodes_splits", TensorProto.FLOAT, [n], fields["splits"]),
        nodes_truenodeids=fields["truenodeids"], nodes_trueleafs=fields["trueleafs"],
        nodes_falsenodeids=fields["falsenodeids"], nodes_falseleafs=fields["falseleafs"],
        nodes_missing_value_tracks_true=fields["missing"],
        leaf_targetids=[leaf_weight[key][0] for key in ordered_leaves],
        leaf_weights=helper.make_tensor(
            "leaf_weights", TensorProto.FLOAT, [len(ordered_leaves)], [leaf_weight[key][1] for key in ordered_leaves]
        ),
    )
    nodes = [node]
    if base.size:
        graph.initializer.append(numpy_helper.from_array(base, name=output + "_base"))
        nodes.append(helper.make_node("Add", [summed, output + "_base"], [output]))
    del graph.node[position]
    for offset, new in enumerate(nodes):
        graph.node.insert(position + offset, new)
    for opset in model.opset_import:
        if opset.domain == "ai.onnx.ml":
            opset.version = 5
    onnx.checker.check_model(model)
    return model


def set_membership_model(out, rng, rows):
    """Opset 5's set-membership split, which no converter writes yet: a tree sending
    f0 in {1, 2, 5} (or missing) one way, then f1 <= 0.5, then f0 in {3, 4}, whose false
    branch is the leaf f1 <= 0.5 also leads to."""
    nodes = helper.make_node(
        "TreeEnsemble", ["X"], ["variable"], domain="ai.onnx.ml",
        n_targets=1, aggregate_function=1, post_transform=0, tree_roots=[0],
        nodes_featureids=[0, 1, 0],
        nodes_modes=helper.make_tensor("nodes_modes", TensorProto.UINT8, [3], [6, 0, 6]),
        nodes_splits=helper.make_tensor("nodes_splits", TensorProto.FLOAT, [3], [0.0, 0.5, 0.0]),
        nodes_truenodeids=[0, 1, 2], nodes_trueleafs=[1, 1, 1],
        nodes_falsenodeids=[1, 2, 1], nodes_falseleafs=[0, 0, 1],
        nodes_missing_value_tracks_true=[1, 0, 0],
        membership_values=helper.make_tensor("membership_values", TensorProto.FLOAT, [6], [1, 2, 5, np.nan, 3, 4]),
        leaf_targetids=[0, 0, 0],
        leaf_weights=helper.make_tensor("leaf_weights", TensorProto.FLOAT, [3], [10.0, 20.0, 30.0]),
    )
    graph = helper.make_graph(
        [nodes], "member",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    x = np.stack([rng.integers(0, 7, rows), rng.normal(0.5, 1, rows)], axis=1).astype(np.float32)
    x[rng.random((rows, 2)) < 0.05] = np.nan
    frame = pd.DataFrame(x, columns=["f0", "f1"])
    entry = save(out, "member_v5", model, infer_signature(frame.head(5)), frame.head(5), frame, pd.DataFrame(),
                 "pyfunc", "regressor")
    predicted = mlflow.pyfunc.load_model(os.path.join(out, "member_v5", "model")).predict(frame)
    values = predicted["variable"].to_numpy(dtype=np.float32).reshape(-1)
    assert set(np.unique(values)) == {10.0, 20.0, 30.0}, np.unique(values)
    pd.DataFrame({"value": values}).to_parquet(os.path.join(out, "member_v5", "expected.parquet"), index=False)
    return entry


def convolution_model(out, rng, rows):
    """A small convolutional network over 3 x 8 x 8 images (the graph torch.onnx.export
    makes of Conv2d, ReLU, MaxPool2d, Flatten, Linear and Softmax), built with the onnx
    package: PyTorch's wheels bring gigabytes of GPU libraries this machine cannot take."""
    weights = {
        "conv_w": rng.normal(0, 0.4, (4, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, (4,)).astype(np.float32),
        "fc_w": rng.normal(0, 0.3, (10, 64)).astype(np.float32),
        "fc_b": rng.normal(0, 0.1, (10,)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(v, name=k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    images = rng.random((rows, 3, 8, 8)).astype(np.float32)
    signature = infer_signature(images[:2], np.zeros((2, 10), dtype=np.float32))
    folder = os.path.join(out, "cnn")
    os.makedirs(folder, exist_ok=True)
    mlflow.onnx.save_model(
        model,
        os.path.join(folder, "model"),
        signature=signature,
        input_example=images[:2],
        onnx_session_options=SINGLE_THREAD,
        pip_requirements=REQUIREMENTS,
    )
    predicted = mlflow.pyfunc.load_model(os.path.join(folder, "model")).predict(images)
    probabilities = predicted["probabilities"] if isinstance(predicted, dict) else np.asarray(predicted)
    pd.DataFrame({"image": list(images.reshape(rows, -1))}).to_parquet(os.path.join(folder, "input.parquet"), index=False)
    pd.DataFrame({f"p_{i}": probabilities[:, i] for i in range(10)}).to_parquet(
        os.path.join(folder, "expected.parquet"), index=False
    )
    return {"name": "cnn", "reference": "pyfunc", "kind": "tensor"}


SMALL_TYPES = {
    "pixels": (TensorProto.UINT8, np.uint8, 4, np.uint32),
    "offsets": (TensorProto.INT8, np.int8, 2, np.int32),
    "counts": (TensorProto.UINT16, np.uint16, 2, np.uint32),
    "deltas": (TensorProto.INT16, np.int16, 2, np.int32),
    "scale": (TensorProto.FLOAT16, np.float16, 2, np.float32),
}


def small_types_model(out, rng, rows):
    """A graph over 8- and 16-bit integer and half-float tensors (what quantized and
    image models take): each value cast to float and weighed (one product per value,
    which every runtime rounds alike), returned as float and as float16, and two inputs
    returned as they came. Scored by pyfunc, fed a dict of arrays of the signature's
    types. The Parquet files hold each value in the wider type a frame holds it in
    (32-bit integers, float32), which is exact."""
    inputs = []
    nodes = []
    for name, (onnx_type, _, width, _) in SMALL_TYPES.items():
        inputs.append(helper.make_tensor_value_info(name, onnx_type, ["N", width]))
        nodes.append(helper.make_node("Cast", [name], [f"{name}_float"], to=TensorProto.FLOAT))
    width = sum(w for _, _, w, _ in SMALL_TYPES.values())
    weights = rng.normal(0, 0.05, (width,)).astype(np.float32)
    nodes += [
        helper.make_node("Concat", [f"{name}_float" for name in SMALL_TYPES], ["features"], axis=1),
        helper.make_node("Mul", ["features", "weights"], ["score"]),
        helper.make_node("Cast", ["score"], ["score_half"], to=TensorProto.FLOAT16),
        helper.make_node("Identity", ["pixels"], ["pixels_out"]),
        helper.make_node("Identity", ["deltas"], ["deltas_out"]),
    ]
    outputs = [
        helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", width]),
        helper.make_tensor_value_info("score_half", TensorProto.FLOAT16, ["N", width]),
        helper.make_tensor_value_info("pixels_out", TensorProto.UINT8, ["N", 4]),
        helper.make_tensor_value_info("deltas_out", TensorProto.INT16, ["N", 2]),
    ]
    graph = helper.make_graph(nodes, "small_types", inputs, outputs, [numpy_helper.from_array(weights, name="weights")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = {
        "pixels": rng.integers(0, 256, (rows, 4)).astype(np.uint8),
        "offsets": rng.integers(-128, 128, (rows, 2)).astype(np.int8),
        "counts": rng.integers(0, 65536, (rows, 2)).astype(np.uint16),
        "deltas": rng.integers(-32768, 32768, (rows, 2)).astype(np.int16),
        "scale": rng.normal(0, 100, (rows, 2)).astype(np.float16),
    }
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(dtype), (-1, w), name) for name, (_, dtype, w, _) in SMALL_TYPES.items()]),
        outputs=Schema([
            TensorSpec(np.dtype(np.float32), (-1, width), "score"),
            TensorSpec(np.dtype(np.float16), (-1, width), "score_half"),
            TensorSpec(np.dtype(np.uint8), (-1, 4), "pixels_out"),
            TensorSpec(np.dtype(np.int16), (-1, 2), "deltas_out"),
        ]),
    )
    folder = os.path.join(out, "small_types")
    os.makedirs(folder, exist_ok=True)
    mlflow.onnx.save_model(
        model, os.path.join(folder, "model"), signature=signature, onnx_session_options=SINGLE_THREAD,
        pip_requirements=REQUIREMENTS,
    )
    predicted = mlflow.pyfunc.load_model(os.path.join(folder, "model")).predict(data)
    assert predicted["score_half"].dtype == np.float16 and predicted["pixels_out"].dtype == np.uint8, predicted
    held = {"score": np.float32, "score_half": np.float32, "pixels_out": np.uint32, "deltas_out": np.int32}
    wider = {name: wide for name, (_, _, _, wide) in SMALL_TYPES.items()}
    pd.DataFrame({name: list(values.astype(wider[name])) for name, values in data.items()}).to_parquet(
        os.path.join(folder, "input.parquet"), index=False
    )
    pd.DataFrame({name: list(np.asarray(predicted[name]).astype(held[name])) for name in held}).to_parquet(
        os.path.join(folder, "expected.parquet"), index=False
    )
    return {"name": "small_types", "reference": "pyfunc", "kind": "small_types"}


def label_encoder_v1_models(out, rng, rows):
    """ai.onnx.ml opset 1's LabelEncoder, which onnxmltools and older skl2onnx exports use:
    strings to their index in `classes_strings` (`default_int64` for the rest), and indices
    back to strings (`default_string` outside the classes). Scored by onnxruntime, fed as
    pyfunc cannot feed a string column."""
    classes = ["apple", "banana", "cherry", "date"]
    cases = [
        ("label_encoder_v1_strings", TensorProto.STRING, TensorProto.INT64, "string", "long",
         np.array(rng.choice(classes + ["elderberry", ""], rows), dtype=object)),
        ("label_encoder_v1_indices", TensorProto.INT64, TensorProto.STRING, "long", "string",
         rng.integers(-2, len(classes) + 2, rows).astype(np.int64)),
    ]
    entries = []
    for name, input_type, output_type, input_spec, output_spec, values in cases:
        node = helper.make_node(
            "LabelEncoder", ["X"], ["Y"], domain="ai.onnx.ml",
            classes_strings=classes, default_int64=-7, default_string="unknown",
        )
        graph = helper.make_graph(
            [node], name,
            [helper.make_tensor_value_info("X", input_type, [None, 1])],
            [helper.make_tensor_value_info("Y", output_type, [None, 1])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        predicted = session.run(None, {"X": values.reshape(-1, 1)})[0].reshape(-1)
        signature = ModelSignature(
            inputs=Schema([ColSpec(input_spec, "X")]), outputs=Schema([ColSpec(output_spec, "Y")])
        )
        frame = pd.DataFrame({"X": values})
        expected = pd.DataFrame({"Y": predicted if output_type == TensorProto.INT64 else predicted.astype(str)})
        entries.append(save(out, name, model, signature, None, frame, expected, "onnxruntime", "labels"))
    return entries


def hostile_models(out):
    """Graphs whose ai.onnx.ml attributes a careless or hostile exporter could write, each
    with the words the load error must contain: a one-class classifier, declared widths
    no memory holds, and a vectorizer with nothing to vectorize. onnxruntime refuses or
    crashes on them; Rust must refuse them when they load."""
    ml = helper.make_opsetid("ai.onnx.ml", 3)
    leaf = dict(
        nodes_treeids=[0],
        nodes_nodeids=[0],
        nodes_featureids=[0],
        nodes_modes=["LEAF"],
        nodes_values=[0.0],
        nodes_truenodeids=[0],
        nodes_falsenodeids=[0],
    )

    def empty(name, kind):
        return helper.make_attribute(name, [], attr_type=kind)

    linear = helper.make_node("LinearRegressor", ["X"], ["Y"], domain="ai.onnx.ml", targets=2**62)
    linear.attribute.append(empty("coefficients", onnx.AttributeProto.FLOATS))
    no_inputs = helper.make_node("FeatureVectorizer", [], ["Y"], domain="ai.onnx.ml")
    no_inputs.attribute.append(empty("inputdimensions", onnx.AttributeProto.INTS))
    cases = {
        "one_class": (
            helper.make_node(
                "TreeEnsembleClassifier", ["X"], ["label", "Y"], domain="ai.onnx.ml", classlabels_int64s=[0],
                class_treeids=[0], class_nodeids=[0], class_ids=[0], class_weights=[1.0], **leaf,
            ),
            [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])],
            "at least two",
        ),
        "huge_targets": (
            helper.make_node(
                "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=2**40,
                target_treeids=[0], target_nodeids=[0], target_ids=[0], target_weights=[1.0], **leaf,
            ),
            [],
            "targets per row",
        ),
        "huge_linear": (linear, [], "coefficients do not make"),
        "vectorizer_without_inputs": (no_inputs, [], "no inputs"),
        "double_tree_ensemble_v5": (
            helper.make_node(
                "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", tree_roots=[0], nodes_featureids=[0],
                nodes_modes=helper.make_tensor("nodes_modes", TensorProto.UINT8, [1], [0]),
                nodes_splits=helper.make_tensor("nodes_splits", TensorProto.DOUBLE, [1], [0.5]),
                nodes_truenodeids=[0], nodes_trueleafs=[1], nodes_falsenodeids=[1], nodes_falseleafs=[1],
                leaf_targetids=[0, 0], leaf_weights=helper.make_tensor("leaf_weights", TensorProto.DOUBLE, [2], [1, 2]),
            ),
            [],
            "only float trees run here",
        ),
        "empty_membership_v5": (
            helper.make_node(
                "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", tree_roots=[0], nodes_featureids=[0],
                nodes_modes=helper.make_tensor("nodes_modes", TensorProto.UINT8, [1], [6]),
                nodes_splits=helper.make_tensor("nodes_splits", TensorProto.FLOAT, [1], [0.0]),
                nodes_truenodeids=[0], nodes_trueleafs=[1], nodes_falsenodeids=[1], nodes_falseleafs=[1],
                membership_values=helper.make_tensor("membership_values", TensorProto.FLOAT, [1], [np.nan]),
                leaf_targetids=[0, 0], leaf_weights=helper.make_tensor("leaf_weights", TensorProto.FLOAT, [2], [1, 2]),
            ),
            [],
            "has no members",
        ),
        "huge_vectorizer": (
            helper.make_node("FeatureVectorizer", ["X"], ["Y"], domain="ai.onnx.ml", inputdimensions=[2**62]),
            [],
            "features per row",
        ),
    }
    folder = os.path.join(out, "hostile")
    os.makedirs(folder, exist_ok=True)
    listed = {}
    for name, (node, outputs, message) in cases.items():
        graph = helper.make_graph(
            [node],
            name,
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])],
            outputs + [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), ml])
        model.ir_version = 8
        onnx.save(model, os.path.join(folder, f"{name}.onnx"))
        listed[name] = message
    with open(os.path.join(folder, "errors.json"), "w") as f:
        json.dump(listed, f, indent=2)


def main():
    out = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rng = np.random.default_rng(7)
    entries = pipeline_model(out, rng, rows)
    entries += tabular_models(out, rng, rows)
    entries.append(convolution_model(out, rng, min(rows, 2000)))
    entries.append(small_types_model(out, rng, rows))
    entries += label_encoder_v1_models(out, rng, rows)
    entries.append(set_membership_model(out, rng, rows))
    hostile_models(out)
    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump({"rows": rows, "models": entries}, f, indent=2)


if __name__ == "__main__":
    main()
