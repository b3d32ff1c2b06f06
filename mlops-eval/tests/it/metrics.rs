use mlops_eval::{Error, Evaluate, Task, classification_metrics, regression_metrics};
use polars::prelude::*;
use proptest::prelude::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn classification_metrics_match_hand_computed_values() {
    // Confusion at 0.5: tp = 2 (0.9, 0.7), fn = 1 (0.4), fp = 1 (0.6), tn = 2 (0.2, 0.1).
    let labels = [true, true, true, false, false, false];
    let probabilities = [0.9, 0.7, 0.4, 0.6, 0.2, 0.1];
    let m = classification_metrics(&labels, &probabilities, 0.5);
    assert!(close(m["accuracy"], 4.0 / 6.0));
    assert!(close(m["precision"], 2.0 / 3.0));
    assert!(close(m["recall"], 2.0 / 3.0));
    assert!(close(m["f1"], 2.0 / 3.0));
    // 8 of 9 positive/negative pairs are ordered correctly.
    assert!(close(m["roc_auc"], 8.0 / 9.0));
    let expected_loss = -(0.9f64.ln() + 0.7f64.ln() + 0.4f64.ln() + 0.4f64.ln() + 0.8f64.ln() + 0.9f64.ln()) / 6.0;
    assert!(close(m["log_loss"], expected_loss));
    // Ties share their rank: all scores equal gives AUC 0.5.
    assert!(close(classification_metrics(&[true, false, true, false], &[0.3; 4], 0.5)["roc_auc"], 0.5));
    // Undefined AUC is absent, not NaN; no predicted positives gives precision 0 as scikit-learn.
    let one_class = classification_metrics(&[true, true], &[0.1, 0.2], 0.5);
    assert!(!one_class.contains_key("roc_auc"));
    assert_eq!(one_class["precision"], 0.0);
    // Certain and wrong is finite thanks to clipping.
    assert!(classification_metrics(&[true], &[0.0], 0.5)["log_loss"].is_finite());
    assert!(classification_metrics(&[], &[], 0.5).is_empty());
}

#[test]
fn regression_metrics_match_hand_computed_values() {
    let m = regression_metrics(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0]);
    assert!(close(m["mae"], 0.5));
    assert!(close(m["rmse"], 0.375f64.sqrt()));
    assert!(close(m["r2"], 0.948_608_137_044_967_9));
    assert!(!regression_metrics(&[1.0, 1.0], &[1.0, 2.0]).contains_key("r2"), "R² is undefined for a constant label");
}

#[test]
fn evaluation_slices_and_frames() {
    let scored = df!(
        "Label" => [1, 0, 1, 0, 1, 0],
        "prediction" => [0.9, 0.2, 0.3, 0.4, 0.8, 0.6],
        "Product" => ["A", "A", "B", "B", "C", "C"],
        "CustomerID" => [1i64, 1, 1, 2, 2, 2],
    )
    .unwrap();
    let evaluation = Evaluate::new("Label", "prediction", Task::classification())
        .slice_by(["Product", "CustomerID"])
        .run(&scored)
        .unwrap();
    assert_eq!(evaluation.rows, 6);
    assert!(close(evaluation.overall["accuracy"], 4.0 / 6.0));
    let by: Vec<(&str, &str, usize, f64)> = evaluation
        .slices
        .iter()
        .map(|s| (s.column.as_str(), s.value.as_str(), s.rows, s.metrics["accuracy"]))
        .collect();
    assert_eq!(
        by,
        [
            ("Product", "A", 2, 1.0),
            ("Product", "B", 2, 0.5),
            ("Product", "C", 2, 0.5),
            ("CustomerID", "1", 3, 2.0 / 3.0),
            ("CustomerID", "2", 3, 2.0 / 3.0),
        ]
    );
    let frame = evaluation.to_frame().unwrap();
    assert_eq!(frame.get_column_names(), ["slice_column", "slice_value", "rows", "metric", "value"]);
    let overall_rows = frame.column("slice_column").unwrap().null_count();
    assert_eq!(overall_rows, evaluation.overall.len());

    let regression = df!("y" => [1.0, 2.0, 3.0], "prediction" => [1i32, 2, 4]).unwrap();
    let evaluation = Evaluate::new("y", "prediction", Task::Regression).run(&regression).unwrap();
    assert!(close(evaluation.overall["mae"], 1.0 / 3.0));
}

#[test]
fn evaluation_errors_name_the_column() {
    let scored = df!("Label" => [1, 2], "prediction" => [0.9, 0.1], "text" => ["a", "b"]).unwrap();
    let run = |label: &str, prediction: &str, task| Evaluate::new(label, prediction, task).run(&scored);
    assert!(matches!(run("Label", "prediction", Task::classification()),
        Err(Error::Core(mlops_core::Error::Schema { column, found, .. })) if column == "Label" && found == "label 2"));
    assert!(matches!(run("Label", "text", Task::classification()),
        Err(Error::Core(mlops_core::Error::Schema { column, .. })) if column == "text"));
    assert!(matches!(run("missing", "prediction", Task::Regression),
        Err(Error::Core(mlops_core::Error::MissingColumns { columns })) if columns == ["missing"]));
    assert!(matches!(
        run("Label", "prediction", Task::Classification { threshold: 1.5 }),
        Err(Error::InvalidArgument(_))
    ));
    let nulls = df!("Label" => [Some(1), None], "prediction" => [0.9, 0.1]).unwrap();
    assert!(matches!(Evaluate::new("Label", "prediction", Task::classification()).run(&nulls),
        Err(Error::Core(mlops_core::Error::Schema { column, .. })) if column == "Label"));
}

proptest! {
    #[test]
    fn classification_metrics_stay_in_range(rows in prop::collection::vec((any::<bool>(), 0.0f64..=1.0), 1..200)) {
        let (labels, probabilities): (Vec<bool>, Vec<f64>) = rows.into_iter().unzip();
        let m = classification_metrics(&labels, &probabilities, 0.5);
        for name in ["accuracy", "precision", "recall", "f1"] {
            prop_assert!((0.0..=1.0).contains(&m[name]), "{} = {}", name, m[name]);
        }
        prop_assert!(m["log_loss"] >= 0.0 && m["log_loss"].is_finite());
        if let Some(auc) = m.get("roc_auc") {
            prop_assert!((0.0..=1.0).contains(auc));
            // Flipping every score mirrors the AUC.
            let flipped: Vec<f64> = probabilities.iter().map(|p| 1.0 - p).collect();
            let mirrored = classification_metrics(&labels, &flipped, 0.5)["roc_auc"];
            prop_assert!((auc + mirrored - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn perfect_regression_has_zero_error(values in prop::collection::vec(-1e6f64..1e6, 2..100)) {
        let m = regression_metrics(&values, &values);
        prop_assert_eq!(m["rmse"], 0.0);
        prop_assert_eq!(m["mae"], 0.0);
        if let Some(r2) = m.get("r2") {
            prop_assert!((r2 - 1.0).abs() < 1e-12);
        }
    }
}
