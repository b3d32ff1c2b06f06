//! The forecaster flavor: features, recursive forecasts, errors, packaging.

use mlops_core::{FORECASTER, FlavorRegistry, ForecastParams, Model, Package, RegressionAlgorithm};
use polars::prelude::*;

fn as_dates(frame: DataFrame) -> DataFrame {
    frame.lazy().with_column(col("day").cast(DataType::Date)).collect().unwrap()
}

fn saturday(day: i32) -> bool {
    (day + 3).rem_euclid(7) == 5
}

/// An exact autoregression: `y = 0.9 · y[t−7] + 12 + 10 · saturday`, started from
/// different first weeks per store, so the features are not collinear.
fn autoregressive(stores: &[(&str, i32, f64)], days: i32) -> (DataFrame, Vec<Vec<f64>>) {
    let (mut store, mut day, mut sales, mut paths) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, first_day, start) in stores {
        let mut path: Vec<f64> = Vec::new();
        for t in 0..days {
            let d = first_day + t;
            let y = if t < 7 { start + f64::from(t * t) } else { next(path[(t - 7) as usize], d) };
            path.push(y);
            store.push(*name);
            day.push(d);
            sales.push(y);
        }
        paths.push(path);
    }
    (as_dates(df!("store" => store, "day" => day, "sales" => sales).unwrap()), paths)
}

fn next(lag_7: f64, day: i32) -> f64 {
    0.9 * lag_7 + 12.0 + if saturday(day) { 10.0 } else { 0.0 }
}

fn predictions(frame: &DataFrame) -> Vec<f64> {
    frame.column("prediction").unwrap().f64().unwrap().into_no_null_iter().collect()
}

fn requests(rows: &[(&str, i32)]) -> DataFrame {
    let (store, day): (Vec<&str>, Vec<i32>) = rows.iter().copied().unzip();
    as_dates(df!("store" => store, "day" => day).unwrap())
}

#[test]
fn forecasts_recurse_through_their_own_predictions() {
    let (history, paths) = autoregressive(&[("a", 0, 50.0), ("b", 3, 200.0)], 60);
    let model = ForecastParams::new("sales", "day", ["store"], RegressionAlgorithm::Linear)
        .lags([7])
        .check()
        .unwrap()
        .fit(&history)
        .unwrap();
    // The process continued by hand: past the history, lags read earlier values of the
    // same continuation.
    let continued = |path: &[f64], first_day: i32, horizon: i32| {
        let mut path = path.to_vec();
        for _ in 0..horizon {
            let t = path.len();
            path.push(next(path[t - 7], first_day + t as i32));
        }
        path
    };
    let a = continued(&paths[0], 0, 20);
    let b = continued(&paths[1], 3, 20);
    // Rows in any order, several series, days 1 to 20 past each history's end.
    let asked = [("b", 63 + 20 - 1), ("a", 60), ("a", 79), ("b", 63), ("a", 67), ("b", 70)];
    let got = predictions(&model.predict(&requests(&asked)).unwrap());
    let expected = [b[79], a[60], a[79], b[60], a[67], b[67]];
    for ((row, got), expected) in asked.iter().zip(&got).zip(expected) {
        assert!((got - expected).abs() < 1e-6, "{row:?}: {got} vs {expected}");
    }
    // A forecast does not depend on which other rows were asked for.
    let alone = predictions(&model.predict(&requests(&[("a", 79)])).unwrap());
    assert!((alone[0] - got[2]).abs() < 1e-9);
    assert_eq!(model.history_end(&["a"]).unwrap().to_string(), "1970-03-01");
    assert_eq!(model.history_end(&["b"]).unwrap().to_string(), "1970-03-04");
    let names = &model.weights().feature_names;
    assert_eq!(names[0], "lag_7");
    assert!(names.contains(&"is_saturday".to_owned()) && names.contains(&"trend_years".to_owned()));
    assert!(!names.contains(&"year_sin".to_owned()));
}

#[test]
fn the_package_round_trips_through_the_flavor_registry() {
    let (history, _) = autoregressive(&[("a", 0, 50.0), ("b", 3, 200.0)], 60);
    let model = ForecastParams::new(
        "sales",
        "day",
        ["store"],
        RegressionAlgorithm::ElasticNet { penalty: 0.01, l1_ratio: 0.5 },
    )
    .lags([7, 14])
    .yearly(true)
    .check()
    .unwrap()
    .fit(&history)
    .unwrap();
    let asked = requests(&[("a", 61), ("b", 70), ("a", 90)]);
    let package = model.package(Some(&asked)).unwrap();
    assert_eq!(package.manifest().flavor, FORECASTER);
    let dir = tempfile::tempdir().unwrap();
    package.save(dir.path()).unwrap();
    let loaded = FlavorRegistry::with_builtins().load(&Package::read_dir(dir.path()).unwrap()).unwrap();
    assert_eq!(predictions(&loaded.predict(&asked).unwrap()), predictions(&model.predict(&asked).unwrap()));
    assert!(model.weights().feature_names.contains(&"year_cos".to_owned()));
    assert_eq!(model.weights().algorithm, "elastic_net");
    // Datetimes are accepted too, by their day.
    let noon = |day: i64| day * 86_400_000 + 43_200_000;
    let at_noon = df!("store" => ["a", "b", "a"], "day" => [noon(61), noon(70), noon(90)])
        .unwrap()
        .lazy()
        .with_column(col("day").cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
        .collect()
        .unwrap();
    assert_eq!(predictions(&loaded.predict(&at_noon).unwrap()), predictions(&model.predict(&asked).unwrap()));
}

#[test]
fn bad_requests_name_their_row() {
    let (history, _) = autoregressive(&[("a", 0, 50.0)], 40);
    let model = ForecastParams::new("sales", "day", ["store"], RegressionAlgorithm::Linear)
        .lags([7])
        .max_horizon(30)
        .check()
        .unwrap()
        .fit(&history)
        .unwrap();
    let error = |rows: &[(&str, i32)]| model.predict(&requests(rows)).unwrap_err().to_string();
    let unknown = error(&[("a", 41), ("zz", 41)]);
    assert!(unknown.contains("store=zz in row 1"), "{unknown}");
    let past = error(&[("a", 39)]);
    assert!(past.contains("1970-02-09 in row 0") && past.contains("from 1970-02-10 to 1970-03-11"), "{past}");
    let far = error(&[("a", 41), ("a", 70)]);
    assert!(far.contains("in row 1"), "{far}");
    let no_date = model.predict(&df!("store" => ["a"]).unwrap()).unwrap_err().to_string();
    assert!(no_date.contains("day"), "{no_date}");
    // Days past any calendar, as dates and as datetimes, are refused before any arithmetic.
    let beyond = error(&[("a", 41), ("a", i32::MAX)]);
    assert!(beyond.contains("a date from year 1 to 9999") && beyond.contains("in row 1"), "{beyond}");
    let far_datetime = df!("store" => ["a"], "day" => [i64::MAX]).unwrap();
    let far_datetime = far_datetime
        .lazy()
        .with_column(col("day").cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
        .collect()
        .unwrap();
    let beyond = model.predict(&far_datetime).unwrap_err().to_string();
    assert!(beyond.contains("a date from year 1 to 9999") && beyond.contains("row 0"), "{beyond}");
}

#[test]
fn training_errors_name_the_culprit() {
    let (history, _) = autoregressive(&[("a", 0, 50.0)], 40);
    let fit =
        |params: ForecastParams, frame: &DataFrame| params.check().and_then(|p| p.fit(frame)).unwrap_err().to_string();
    let params = || ForecastParams::new("sales", "day", ["store"], RegressionAlgorithm::Linear).lags([7]);
    assert!(fit(params().lags([0]), &history).contains("lags"));
    assert!(
        fit(ForecastParams::new("sales", "day", ["sales"], RegressionAlgorithm::Linear), &history)
            .contains("two roles")
    );
    assert!(
        fit(ForecastParams::new("units", "day", ["store"], RegressionAlgorithm::Linear), &history).contains("units")
    );
    let twice = concat([history.clone().lazy(), history.clone().lazy().slice(5, 1)], UnionArgs::default())
        .unwrap()
        .collect()
        .unwrap();
    let duplicate = fit(params(), &twice);
    assert!(duplicate.contains("1970-01-06 twice for store=a"), "{duplicate}");
    let short = history.slice(0, 12);
    assert!(fit(params(), &short).contains("days have all their lags"));
    let mut nulls = history.clone();
    nulls
        .with_column(Column::new("sales".into(), (0..40).map(|i| (i != 3).then_some(1.0)).collect::<Vec<_>>()))
        .unwrap();
    assert!(fit(params(), &nulls).contains("sales"));

    let mut infinite = history.clone();
    infinite
        .with_column(Column::new(
            "sales".into(),
            (0..40).map(|i| if i == 9 { f64::INFINITY } else { 1.0 }).collect::<Vec<_>>(),
        ))
        .unwrap();
    let error = fit(params(), &infinite);
    assert!(error.contains("finite numbers") && error.contains("row 9"), "{error}");
    // Least squares cannot weigh a weekday no training day falls on.
    let no_sundays = history
        .clone()
        .lazy()
        .filter(((col("day").cast(DataType::Int32) + lit(3)) % lit(7)).neq(lit(6)))
        .collect()
        .unwrap();
    let error = fit(params(), &no_sundays);
    assert!(error.contains("sunday") && error.contains("elastic net"), "{error}");

    // A history spanning far more days than it has rows would hold every day between.
    let sparse = as_dates(
        df!("store" => ["a"; 40], "day" => (0..40).map(|i| i * 1000).collect::<Vec<i32>>(), "sales" => [1.0; 40])
            .unwrap(),
    );
    let error = fit(params(), &sparse);
    assert!(error.contains("at most 2926 days of history for 40 rows") && error.contains("store=a"), "{error}");

    // A gap inside the kept history stops only the forecasts whose lags need it.
    let gap = history.lazy().filter(col("day").neq(lit(35).cast(DataType::Date))).collect().unwrap();
    let model = params().check().unwrap().fit(&gap).unwrap();
    assert!(model.predict(&requests(&[("a", 41)])).is_ok());
    let needs_gap = model.predict(&requests(&[("a", 42)])).unwrap_err().to_string();
    assert!(needs_gap.contains("no sales for store=a on 1970-02-05, which lag 7 of 1970-02-12 needs"), "{needs_gap}");
}
