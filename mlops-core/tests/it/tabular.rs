use mlops_core::{
    Error, FlavorRegistry, Model, Package, RegressionAlgorithm, TABULAR_REGRESSOR, TabularClassifierParams,
    TabularRegressorParams, TabularTask,
};
use polars::prelude::*;

/// A deterministic pseudo-random sequence in [0, 1).
fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Label 1 when amount + product effect + noise is high; label 1 is the minority (~30%).
fn classification_frame(n: usize) -> DataFrame {
    let amounts = uniform(n, 1);
    let noise = uniform(n, 2);
    let products: Vec<&str> = uniform(n, 3).iter().map(|u| ["A", "B", "C"][(u * 3.0) as usize]).collect();
    let labels: Vec<i32> = amounts
        .iter()
        .zip(&products)
        .zip(&noise)
        .map(|((a, p), e)| {
            let effect = match *p {
                "A" => 0.3,
                "B" => 0.0,
                _ => -0.3,
            };
            i32::from(a * 100.0 + effect * 100.0 + (e - 0.5) * 10.0 > 75.0)
        })
        .collect();
    df!(
        "Product" => products,
        "Amount" => amounts.iter().map(|a| a * 100.0).collect::<Vec<_>>(),
        "TransactionTimestamp" => (0..n as i64).collect::<Vec<_>>(),
        "Label" => labels,
    )
    .unwrap()
}

fn probabilities(frame: &DataFrame) -> Vec<f64> {
    frame.column("prediction").unwrap().f64().unwrap().no_null_iter().collect()
}

#[test]
fn the_classifier_predicts_the_probability_of_label_one() {
    let train = classification_frame(4_000);
    let model = TabularClassifierParams::new("Label")
        .categorical(["Product"])
        .numeric(["Amount"])
        .l2_penalty(0.01)
        .check()
        .unwrap()
        .fit(&train)
        .unwrap();
    assert_eq!(model.task(), TabularTask::Classifier);
    assert_eq!(model.weights().feature_names, ["Product_A", "Product_B", "Product_C", "Amount"]);
    let predicted = model.predict(&train).unwrap();
    assert_eq!(predicted.get_column_names(), ["prediction"]);
    let p = probabilities(&predicted);
    assert!(p.iter().all(|p| (0.0..=1.0).contains(p)));
    let labels: Vec<i32> = train.column("Label").unwrap().i32().unwrap().no_null_iter().collect();
    let positives = labels.iter().filter(|&&l| l == 1).count();
    assert!(positives < 2_000, "label 1 must be the minority for this test, got {positives}");
    let correct = p.iter().zip(&labels).filter(|(p, l)| (**p >= 0.5) == (**l == 1)).count();
    assert!(correct as f64 / labels.len() as f64 > 0.9, "accuracy {correct}/4000");
    // Amount raises the odds of label 1, product A more than C.
    assert!(model.weights().coefficients[3] > 0.0);
    assert!(model.weights().coefficients[0] > model.weights().coefficients[2]);
}

#[test]
fn inputs_are_checked_against_the_training_signature() {
    let train = classification_frame(500);
    let model = TabularClassifierParams::new("Label")
        .categorical(["Product"])
        .numeric(["Amount"])
        .check()
        .unwrap()
        .fit(&train)
        .unwrap();
    let inputs: Vec<&str> = model.signature().inputs.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(inputs, ["Product", "Amount"]);
    match model.predict(&train.drop("Amount").unwrap()) {
        Err(Error::MissingColumns { columns }) => assert_eq!(columns, ["Amount"]),
        other => panic!("{other:?}"),
    }
    let wrong = df!("Product" => ["A"], "Amount" => ["12"]).unwrap();
    assert!(matches!(model.predict(&wrong), Err(Error::Schema { column, .. }) if column == "Amount"));
    // An integer amount widens; an unseen product scores without error.
    let fine = df!("Product" => ["Z"], "Amount" => [50i32]).unwrap();
    assert_eq!(model.predict(&fine).unwrap().height(), 1);
}

#[test]
fn classifier_training_errors_name_the_culprit() {
    let train = classification_frame(100);
    let fit = |label: &str, frame: &DataFrame| {
        TabularClassifierParams::new(label).numeric(["Amount"]).check().unwrap().fit(frame)
    };
    let three_classes = train.clone().with_column(Column::new("Label".into(), vec![2i32; 100])).unwrap().clone();
    assert!(
        matches!(fit("Label", &three_classes), Err(Error::Schema { column, found, .. }) if column == "Label" && found == "label 2")
    );
    assert!(matches!(fit("Product", &train), Err(Error::Schema { column, .. }) if column == "Product"));
    assert!(matches!(fit("nope", &train), Err(Error::MissingColumns { columns }) if columns == ["nope"]));
    let mut one_class = train;
    one_class.with_column(Column::new("Label".into(), vec![1i32; 100])).unwrap();
    assert!(matches!(fit("Label", &one_class), Err(Error::Fit { .. })));

    let check = |params: TabularClassifierParams| params.check().unwrap_err().to_string();
    assert!(check(TabularClassifierParams::new("Label")).contains("at least one feature"));
    assert!(check(TabularClassifierParams::new("Label").numeric(["Label"])).contains("target column `Label`"));
    assert!(check(TabularClassifierParams::new("Label").numeric(["x"]).l2_penalty(-1.0)).contains("l2_penalty"));
    assert!(check(TabularClassifierParams::new("Label").numeric(["x"]).max_iterations(0)).contains("max_iterations"));
    assert!(
        check(TabularClassifierParams::new("Label").numeric(["x"]).gradient_tolerance(0.0))
            .contains("gradient_tolerance")
    );
}

fn regression_frame(n: usize) -> DataFrame {
    let x = uniform(n, 9);
    let store: Vec<i64> = uniform(n, 10).iter().map(|u| (u * 3.0) as i64 + 1).collect();
    // y = 3 + 2 x + offset(store), no noise.
    let y: Vec<f64> =
        x.iter().zip(&store).map(|(x, s)| 3.0 + 2.0 * x * 10.0 + [0.0, 5.0, -5.0][(*s - 1) as usize]).collect();
    df!("x" => x.iter().map(|x| x * 10.0).collect::<Vec<_>>(), "store" => store, "sales" => y).unwrap()
}

#[test]
fn the_linear_regressor_recovers_the_function_and_packages_as_its_own_flavor() {
    let train = regression_frame(300);
    let model = TabularRegressorParams::new("sales", RegressionAlgorithm::Linear)
        .categorical(["store"])
        .numeric(["x"])
        .check()
        .unwrap()
        .fit(&train)
        .unwrap();
    let fresh = df!("x" => [0.0, 4.0, 4.0], "store" => [1i64, 2, 3]).unwrap();
    let predicted = probabilities(&model.predict(&fresh).unwrap());
    for (got, want) in predicted.iter().zip([3.0, 16.0, 6.0]) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    let package = model.package(Some(&train)).unwrap();
    assert_eq!(package.manifest().flavor, TABULAR_REGRESSOR);
    assert_eq!(package.manifest().metadata["algorithm"], "linear_regression");
    let dir = tempfile::tempdir().unwrap();
    package.save(dir.path()).unwrap();
    let loaded = FlavorRegistry::with_builtins().load(&Package::read_dir(dir.path()).unwrap()).unwrap();
    assert_eq!(probabilities(&loaded.predict(&fresh).unwrap()), predicted);
}

#[test]
fn elastic_net_shrinks_coefficients() {
    let train = regression_frame(300);
    let fit = |algorithm| {
        TabularRegressorParams::new("sales", algorithm)
            .categorical(["store"])
            .numeric(["x"])
            .check()
            .unwrap()
            .fit(&train)
            .unwrap()
    };
    let ols = fit(RegressionAlgorithm::Linear);
    let net = fit(RegressionAlgorithm::ElasticNet { penalty: 1.0, l1_ratio: 0.5 });
    assert_eq!(net.weights().algorithm, "elastic_net");
    let l1 = |w: &[f64]| w.iter().map(|c| c.abs()).sum::<f64>();
    assert!(l1(&net.weights().coefficients) < l1(&ols.weights().coefficients));

    let bad = TabularRegressorParams::new("sales", RegressionAlgorithm::ElasticNet { penalty: 1.0, l1_ratio: 1.5 })
        .numeric(["x"]);
    assert!(bad.check().unwrap_err().to_string().contains("l1_ratio"));
    let text_target = df!("x" => [1.0, 2.0], "sales" => ["a", "b"]).unwrap();
    let params = TabularRegressorParams::new("sales", RegressionAlgorithm::Linear).numeric(["x"]).check().unwrap();
    assert!(matches!(params.fit(&text_target), Err(Error::Schema { column, .. }) if column == "sales"));
}
