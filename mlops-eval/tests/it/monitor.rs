//! Monitoring an inference table: windows, profiles, quality, drift, alerts, plots.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mlops_eval::monitor::{
    Alert, AlertRule, AlertSink, DriftMetric, Monitor, Reference, kolmogorov_smirnov, population_stability_index,
    wasserstein,
};
use mlops_eval::{Error, Task, classification_metrics};
use parking_lot::Mutex;
use polars::prelude::*;

const MINUTE: i64 = 60_000;

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(minute * MINUTE).unwrap()
}

fn with_times(frame: DataFrame, column: &str) -> DataFrame {
    frame.lazy().with_column(col(column).cast(DataType::Datetime(TimeUnit::Milliseconds, None))).collect().unwrap()
}

/// Two versions over three 5-minute windows; version 2 starts in the second window.
fn table() -> DataFrame {
    let frame = df!(
        "scored_at" => [0i64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(|m| m * MINUTE + 30_000),
        "model_version" => [1i64, 1, 1, 1, 1, 2, 1, 2, 2, 1, 1, 2],
        "amount" => [Some(1.0), Some(2.0), Some(3.0), None, Some(4.0), Some(10.0), Some(5.0), Some(11.0), Some(12.0), Some(6.0), Some(7.0), None],
        "country" => [Some("FR"), Some("FR"), Some("DE"), Some("DE"), None, Some("FR"), Some("IT"), Some("IT"), Some("IT"), Some("IT"), Some("FR"), Some("FR")],
        "prediction" => [0.9, 0.2, 0.6, 0.4, 0.8, 0.7, 0.3, 0.1, 0.9, 0.6, 0.2, 0.5],
        "label" => [Some(1), Some(0), Some(0), Some(0), Some(1), Some(1), Some(0), Some(0), None, Some(1), None, None],
        "model_name" => ["fraud"; 12],
    )
    .unwrap();
    with_times(frame, "scored_at")
}

fn five_minutes() -> Monitor {
    Monitor::new().window(Duration::from_secs(300))
}

#[test]
fn windows_are_aligned_and_split_by_version() {
    let report = five_minutes().run(&table()).unwrap();
    // Rows at minutes 0-4 | 5-9 | 10-11.
    assert_eq!(report.profile_value(at(0), "1", ":table", "count"), Some(5.0));
    assert_eq!(report.profile_value(at(5), "1", ":table", "count"), Some(2.0));
    assert_eq!(report.profile_value(at(5), "2", ":table", "count"), Some(3.0));
    assert_eq!(report.profile_value(at(10), "1", ":table", "count"), Some(1.0));
    assert_eq!(report.profile_value(at(10), "2", ":table", "count"), Some(1.0));
    assert_eq!(report.profile_value(at(0), "2", ":table", "count"), None);
    let starts = report.profile.column("window_start").unwrap();
    assert_eq!(starts.dtype(), &DataType::Datetime(TimeUnit::Milliseconds, None));
    let ends = report.profile.column("window_end").unwrap().datetime().unwrap().physical().clone();
    let starts = starts.datetime().unwrap().physical().clone();
    assert!(starts.iter().zip(ends.iter()).all(|(s, e)| e.unwrap() - s.unwrap() == 5 * MINUTE));
    // Ordered by window then version; versions keep their integer type.
    assert_eq!(report.profile.column("model_version").unwrap().dtype(), &DataType::Int64);
    let order: Vec<(i64, i64)> = starts
        .iter()
        .zip(report.profile.column("model_version").unwrap().i64().unwrap().iter())
        .map(|(s, v)| (s.unwrap(), v.unwrap()))
        .collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]));

    // The same rows in an hour window: one group per version.
    let hourly = Monitor::new().run(&table()).unwrap();
    assert_eq!(hourly.profile_value(at(0), "1", ":table", "count"), Some(8.0));
    assert_eq!(hourly.profile_value(at(0), "2", ":table", "count"), Some(4.0));
}

#[test]
fn columns_are_profiled_by_hand_computed_values() {
    let report = five_minutes().run(&table()).unwrap();
    let value = |column, metric| report.profile_value(at(0), "1", column, metric);
    // Version 1, first window: amount 1, 2, 3, null, 4.
    assert_eq!(value("amount", "null_count"), Some(1.0));
    assert_eq!(value("amount", "null_rate"), Some(0.2));
    assert_eq!(value("amount", "mean"), Some(2.5));
    assert!((value("amount", "stddev").unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(value("amount", "min"), Some(1.0));
    assert_eq!(value("amount", "p25"), Some(1.75));
    assert_eq!(value("amount", "median"), Some(2.5));
    assert_eq!(value("amount", "p75"), Some(3.25));
    assert_eq!(value("amount", "max"), Some(4.0));
    assert_eq!(value("amount", "distinct_count"), Some(4.0));
    // country FR, FR, DE, DE, null.
    assert_eq!(value("country", "null_rate"), Some(0.2));
    assert_eq!(value("country", "distinct_count"), Some(2.0));
    assert_eq!(value("country", "mean"), None);
    // Roles and bookkeeping columns are not features; without quality metrics the label
    // column is one (its drift is label drift).
    for skipped in ["model_name", "scored_at", "model_version"] {
        assert_eq!(value(skipped, "null_count"), None, "{skipped}");
    }
    assert_eq!(value("label", "null_count"), Some(0.0));
    let with_quality = five_minutes().quality("label", Task::classification()).run(&table()).unwrap();
    assert_eq!(with_quality.profile_value(at(0), "1", "label", "null_count"), None);
    // A window where every value is missing has null counts only.
    assert_eq!(report.profile_value(at(10), "2", "amount", "null_rate"), Some(1.0));
    assert_eq!(report.profile_value(at(10), "2", "amount", "mean"), None);

    // Named features replace the default set.
    let named = five_minutes().features(["country"]).run(&table()).unwrap();
    assert_eq!(named.profile_value(at(0), "1", "amount", "mean"), None);
    assert_eq!(named.profile_value(at(0), "1", "country", "null_rate"), Some(0.2));
    assert_eq!(named.profile_value(at(0), "1", "prediction", "max"), Some(0.9));
}

#[test]
fn quality_uses_the_labeled_rows_of_each_window() {
    let report = five_minutes().quality("label", Task::classification()).run(&table()).unwrap();
    // Version 1, second window: rows at minutes 6 and 9, both labeled.
    let expected = classification_metrics(&[false, true], &[0.3, 0.6], 0.5);
    for (metric, value) in &expected {
        assert_eq!(report.profile_value(at(5), "1", ":table", metric), Some(*value), "{metric}");
    }
    assert_eq!(report.profile_value(at(5), "1", ":table", "accuracy"), Some(1.0));
    // Version 2, second window: minutes 5, 7, 8; minute 8 is not labeled yet.
    assert_eq!(report.profile_value(at(5), "2", ":table", "labeled_count"), Some(2.0));
    assert_eq!(report.profile_value(at(5), "2", ":table", "accuracy"), Some(1.0));
    // No labels yet: a count of zero and no metrics.
    assert_eq!(report.profile_value(at(10), "1", ":table", "labeled_count"), Some(0.0));
    assert_eq!(report.profile_value(at(10), "1", ":table", "accuracy"), None);
    // The prediction's share at or above the threshold: 0.9, 0.2, 0.6, 0.4, 0.8.
    assert_eq!(report.profile_value(at(0), "1", "prediction", "positive_rate"), Some(0.6));

    let regression = df!(
        "scored_at" => [0i64, MINUTE, 2 * MINUTE],
        "model_version" => ["a", "a", "a"],
        "prediction" => [110.0, 190.0, 330.0],
        "sales" => [100.0, 200.0, 300.0],
    )
    .unwrap();
    let report = five_minutes().quality("sales", Task::Regression).run(&with_times(regression, "scored_at")).unwrap();
    let value = |metric| report.profile_value(at(0), "a", ":table", metric).unwrap();
    assert!((value("mae") - 50.0 / 3.0).abs() < 1e-9);
    assert!((value("rmse") - (1100.0f64 / 3.0).sqrt()).abs() < 1e-9);
    assert!((value("mape") - (0.1 + 0.05 + 0.1) / 3.0).abs() < 1e-12);
    assert!((value("r2") - (1.0 - 1100.0 / 20000.0)).abs() < 1e-12);
    assert_eq!(report.profile.column("model_version").unwrap().dtype(), &DataType::String);
}

#[test]
fn drift_equals_the_statistics_on_the_window_values() {
    let baseline = df!(
        "amount" => (1..=20).map(f64::from).collect::<Vec<_>>(),
        "country" => [["FR"; 10], ["DE"; 10]].concat(),
        "prediction" => (0..20).map(|i| f64::from(i) / 20.0).collect::<Vec<_>>(),
    )
    .unwrap();
    let monitor = five_minutes().quality("label", Task::classification());
    let report = monitor.clone().baseline(baseline).run(&table()).unwrap();
    let base: Vec<f64> = (1..=20).map(f64::from).collect();
    let drift = |start, version, column, metric, reference| {
        report.drift_value(at(start), version, column, metric, reference).unwrap()
    };
    // Version 2, second window: amounts 10, 11, 12.
    let window = [10.0, 11.0, 12.0];
    let ks = drift(5, "2", "amount", DriftMetric::KolmogorovSmirnov, Reference::Baseline);
    assert!((ks - kolmogorov_smirnov(&base, &window)).abs() < 1e-12);
    assert!((ks - 0.45).abs() < 1e-12); // just below 10: F_base = 0.45, F_window = 0
    let w = drift(5, "2", "amount", DriftMetric::Wasserstein, Reference::Baseline);
    assert!((w - wasserstein(&base, &window)).abs() < 1e-12);
    // Deciles of 1..=20 are 2.9, 4.8, ...; 10, 11, 12 fall in the 5th, 6th and 6th bins.
    let mut current = vec![0.0; 10];
    current[4] = 1.0 / 3.0;
    current[5] = 2.0 / 3.0;
    let psi = drift(5, "2", "amount", DriftMetric::Psi, Reference::Baseline);
    assert!((psi - population_stability_index(&[0.1; 10], &current)).abs() < 1e-12);

    // Categories: the first window of version 1 is FR, FR, DE, DE against a 50/50 baseline.
    assert_eq!(drift(0, "1", "country", DriftMetric::Psi, Reference::Baseline), 0.0);
    assert_eq!(drift(0, "1", "country", DriftMetric::JensenShannon, Reference::Baseline), 0.0);
    // Its second window is IT, IT: a category the baseline never had.
    let psi = drift(5, "1", "country", DriftMetric::Psi, Reference::Baseline);
    let floor = mlops_eval::monitor::EMPTY_BIN_FLOOR;
    let expected = 2.0 * (floor - 0.5) * (floor / 0.5).ln() + (1.0 - floor) * (1.0 / floor).ln();
    assert!((psi - expected).abs() < 1e-9, "{psi} vs {expected}");
    assert_eq!(report.drift_value(at(0), "1", "country", DriftMetric::KolmogorovSmirnov, Reference::Baseline), None);

    // Against the previous window of the same version: none for a version's first window.
    assert_eq!(report.drift_value(at(0), "1", "amount", DriftMetric::Psi, Reference::PreviousWindow), None);
    assert_eq!(report.drift_value(at(5), "2", "amount", DriftMetric::Psi, Reference::PreviousWindow), None);
    let ks = drift(5, "1", "amount", DriftMetric::KolmogorovSmirnov, Reference::PreviousWindow);
    assert!((ks - kolmogorov_smirnov(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0])).abs() < 1e-12);
    assert_eq!(drift(5, "1", "country", DriftMetric::JensenShannon, Reference::PreviousWindow), 1.0);

    // The distribution table: the prediction's shares in each window sum to one.
    let distribution = &report.distribution;
    let shares = distribution
        .clone()
        .lazy()
        .filter(col("column_name").eq(lit("prediction")))
        .group_by([col("window_start"), col("model_version")])
        .agg([col("share").sum(), col("count").sum()])
        .collect()
        .unwrap();
    assert_eq!(shares.height(), 5);
    assert!(shares.column("share").unwrap().f64().unwrap().iter().all(|s| (s.unwrap() - 1.0).abs() < 1e-12));
    let bins: Vec<&str> = distribution.column("bin").unwrap().str().unwrap().iter().flatten().collect();
    assert!(bins.contains(&"(-inf, 2.9]") && bins.contains(&"(18.1, inf)") && bins.contains(&"IT"));

    // A baseline whose column holds text where the table has numbers names the column.
    let text_amounts = df!("amount" => ["1"], "country" => ["FR"], "prediction" => [0.5]).unwrap();
    let error = monitor.clone().baseline(text_amounts).run(&table()).unwrap_err();
    assert!(error.to_string().contains("amount"), "{error}");
    let missing = df!("amount" => [1.0], "prediction" => [0.5]).unwrap();
    let error = monitor.baseline(missing).run(&table()).unwrap_err();
    assert!(error.to_string().contains("country"), "{error}");
}

#[test]
fn bad_input_names_its_culprit() {
    let run = |monitor: Monitor, frame: &DataFrame| monitor.run(frame).unwrap_err().to_string();
    assert!(run(Monitor::new().window(Duration::from_secs(60)), &table()).contains("5 minutes"));
    assert!(run(Monitor::new().window(Duration::from_secs(2 * 86_400)), &table()).contains("1 day"));
    assert!(run(Monitor::new().timestamp("ts"), &table()).contains("ts"));
    assert!(run(Monitor::new().features(["amount", "nope"]), &table()).contains("nope"));
    assert!(run(Monitor::new().quality("country", Task::classification()), &table()).contains("country"));
    let mut bad_label = table();
    bad_label.with_column(Column::new("label".into(), [0i64, 1, 2, 0, 1, 0, 1, 0, 1, 0, 1, 0])).unwrap();
    let error = run(Monitor::new().quality("label", Task::classification()), &bad_label);
    assert!(error.contains("label") && error.contains("row 2"), "{error}");
    let null_time = with_times(
        df!("scored_at" => [Some(0i64), None], "model_version" => [1i64, 1], "prediction" => [0.1, 0.2]).unwrap(),
        "scored_at",
    );
    let error = run(Monitor::new(), &null_time);
    assert!(error.contains("scored_at") && error.contains("row 1"), "{error}");
    // The ends of `i64` are past any calendar: a window there would overflow.
    for far in [i64::MIN, i64::MAX] {
        let far_time = with_times(
            df!("scored_at" => [0i64, far], "model_version" => [1i64, 1], "prediction" => [0.1, 0.2]).unwrap(),
            "scored_at",
        );
        let error = run(Monitor::new(), &far_time);
        assert!(error.contains("a calendar holds") && error.contains("row 1"), "{error}");
    }
    let typo = Monitor::new().alert_when(AlertRule::profile_below("acuracy", 0.9));
    assert!(run(typo, &table()).contains("acuracy"));
    let profile_with_reference =
        Monitor::new().alert_when(AlertRule::profile_above("mean", 1.0).against(Reference::Baseline));
    assert!(matches!(profile_with_reference.run(&table()), Err(Error::InvalidArgument(_))));
}

#[derive(Default)]
struct Collect {
    sent: Mutex<Vec<Alert>>,
    fail_version: Option<String>,
}

#[async_trait::async_trait]
impl AlertSink for Collect {
    async fn send(&self, alert: &Alert) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.fail_version.as_deref() == Some(alert.model_version.as_str()) {
            return Err("pager unreachable".into());
        }
        self.sent.lock().push(alert.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_raise_alerts_that_reach_the_sink() {
    let monitor = five_minutes()
        .quality("label", Task::classification())
        .alert_when(AlertRule::profile_above("null_rate", 0.5).on_column("amount"))
        .alert_when(AlertRule::profile_below("accuracy", 0.7))
        .alert_when(
            AlertRule::drift_above(DriftMetric::JensenShannon, 0.9)
                .on_column("country")
                .against(Reference::PreviousWindow),
        );
    let report = monitor.run(&table()).unwrap();
    let described: Vec<String> = report.alerts.iter().map(ToString::to_string).collect();
    // Accuracy: version 1's first window is 0.9/1, 0.2/0, 0.6/0, 0.4/0, 0.8/1 -> 4 of 5 right;
    // nothing else below 0.7. Jensen-Shannon of country against the previous window:
    // version 1 went from FR/DE to IT, then from IT to FR. Null rate of amount above 0.5:
    // version 2's last window. By window, then version.
    assert_eq!(report.alerts.len(), 3, "{described:#?}");
    assert_eq!(
        described[0],
        "1970-01-01 00:05 to 00:10 UTC, version 1: js_distance of `country` against the previous window is 1.0000, above 0.9"
    );
    assert_eq!((report.alerts[1].window_start, report.alerts[1].column.as_str()), (at(10), "country"));
    assert_eq!(report.alerts[2].column, "amount");
    assert_eq!(report.alerts[2].model_version, "2");
    assert_eq!(report.alerts[2].reference, None);

    let sink = Collect::default();
    assert_eq!(report.send_alerts(&sink).await.unwrap(), 3);
    assert_eq!(*sink.sent.lock(), report.alerts);
    // A failing delivery does not stop the others.
    let flaky = Collect { fail_version: Some("1".into()), ..Collect::default() };
    let error = report.send_alerts(&flaky).await.unwrap_err();
    assert!(matches!(error, Error::AlertDelivery { failed: 2, total: 3, .. }), "{error}");
    assert!(error.to_string().contains("pager unreachable"));
    assert_eq!(flaky.sent.lock().len(), 1);
}

#[test]
fn a_metric_is_plotted_over_time_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let report = five_minutes()
        .quality("label", Task::classification())
        .baseline(
            df!("amount" => [1.0, 2.0, 3.0], "country" => ["FR", "DE", "IT"], "prediction" => [0.2, 0.5, 0.8]).unwrap(),
        )
        .alert_when(AlertRule::drift_above(DriftMetric::Psi, 0.25))
        .run(&table())
        .unwrap();
    let path = dir.path().join("psi.svg");
    assert!(report.plot("amount", "psi", &path).unwrap());
    let svg = std::fs::read_to_string(&path).unwrap();
    for text in [
        "psi of amount",
        "version 1 vs baseline",
        "version 2 vs baseline",
        "version 1 vs previous window",
        "alert at 0.25",
    ] {
        assert!(svg.contains(text), "{text}");
    }
    let path = dir.path().join("mean.svg");
    assert!(report.plot("prediction", "mean", &path).unwrap());
    assert!(std::fs::read_to_string(&path).unwrap().contains("version 2"));
    assert!(!report.plot("amount", "no_such_metric", &dir.path().join("none.svg")).unwrap());
    assert!(!dir.path().join("none.svg").exists());
}
