//! Monitoring an inference table: hourly windows × two versions, five watched columns
//! profiled, binned and compared with a baseline and with the previous window, quality on
//! the labeled rows, alert rules checked.
//!
//! `cargo bench -p mlops-benches --bench monitoring` monitors 10,000,000 rows;
//! `benches/compare-monitoring.sh` runs it beside the pandas + SciPy peer on the same
//! Parquet file. In test mode (`cargo test --benches`) it monitors 100,000 rows once.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::read_parquet;
use mlops_eval::Task;
use mlops_eval::monitor::{AlertRule, DriftMetric, Monitor};

fn rows() -> usize {
    mlops_benches::bench_rows(10_000_000, 100_000)
}

fn data_dir() -> PathBuf {
    mlops_benches::bench_dir(env!("CARGO_TARGET_TMPDIR"))
}

fn monitoring(c: &mut Criterion) {
    let files = mlops_benches::prepare_inference_table(&data_dir(), rows()).expect("benchmark data");
    println!("benchmark data: {}", files.table.display());
    let table = read_parquet(&files.table).expect("inference table");
    let baseline = read_parquet(&files.baseline).expect("baseline");
    let monitor = Monitor::new()
        .window(Duration::from_secs(3600))
        .quality("actual_label", Task::classification())
        .baseline(baseline)
        .alert_when(AlertRule::drift_above(DriftMetric::Psi, 0.25))
        .alert_when(AlertRule::profile_below("accuracy", 0.7));
    let report = monitor.run(&table).expect("monitoring");
    println!(
        "{} profile rows, {} distribution rows, {} drift rows, {} alerts",
        report.profile.height(),
        report.distribution.height(),
        report.drift.height(),
        report.alerts.len()
    );

    let mut group = c.benchmark_group("monitoring");
    group.throughput(Throughput::Elements(table.height() as u64));
    group.sample_size(10);
    group.bench_function("hourly_two_versions_five_columns", |b| b.iter(|| monitor.run(&table).expect("monitoring")));
    group.finish();
}

criterion_group!(benches, monitoring);
criterion_main!(benches);
