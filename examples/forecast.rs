//! Daily sales forecasting on a local directory: generate a seeded sales history, train a
//! forecaster, register it as `champion`, forecast every store × item for the next weeks by
//! alias, then train a richer version, compare both on the weeks that really happened, and
//! promote the better one: the same scoring code then runs the new version.
//!
//! ```text
//! cargo run --release --features forecast --example forecast -- --dir ./mlops-forecast
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use mlops_core::{
    FlavorRegistry, ForecastModel, ForecastParams, ModelName, ModelUri, RegressionAlgorithm, write_parquet,
};
use mlops_eval::{Metrics, regression_metrics};
use mlops_examples::sales::{self, DATE, SERIES, TARGET};
use mlops_infer::BatchScorer;
use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, Error as RegistryError, ObjectStoreRegistry, Registry, SetAlias,
};
use polars::prelude::*;

const MODEL: &str = "sales_forecast";

#[derive(Parser, Debug)]
#[command(about = "Train, register, forecast by alias and promote a daily sales forecaster")]
struct Args {
    /// Directory holding the registry and the forecasts.
    #[arg(long, default_value = "./mlops-forecast")]
    dir: PathBuf,
    /// Stores.
    #[arg(long, default_value_t = 10)]
    stores: usize,
    /// Items per store.
    #[arg(long, default_value_t = 20)]
    items: usize,
    /// Days of sales to generate, from 2024-01-01.
    #[arg(long, default_value_t = 730)]
    days: usize,
    /// Days forecast past the history (the last days generated, held out to compare with).
    #[arg(long, default_value_t = 28)]
    horizon: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

struct Candidate {
    description: &'static str,
    algorithm: RegressionAlgorithm,
    lags: &'static [u32],
    yearly: bool,
}

const CANDIDATES: [Candidate; 2] = [
    Candidate {
        description: "Linear regression on last week's sales and the weekday",
        algorithm: RegressionAlgorithm::Linear,
        lags: &[7],
        yearly: false,
    },
    Candidate {
        description: "Elastic net on the same weekday over the last four weeks, weekday and yearly cycle",
        algorithm: RegressionAlgorithm::ElasticNet { penalty: 0.05, l1_ratio: 0.5 },
        lags: &[7, 14, 21, 28],
        yearly: true,
    },
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.horizon == 0 || args.horizon + 60 > args.days {
        return Err(
            format!("--horizon must be 1 to {} days for --days {}", args.days.saturating_sub(60), args.days).into()
        );
    }
    std::fs::create_dir_all(&args.dir)?;
    let registry = ObjectStoreRegistry::local(args.dir.join("registry"))?;
    let flavors = FlavorRegistry::with_builtins();
    let name: ModelName = MODEL.parse()?;

    step(&format!(
        "generating {} stores × {} items × {} days (seed {})",
        args.stores, args.items, args.days, args.seed
    ));
    let data =
        sales::generate(&sales::Config { stores: args.stores, items: args.items, days: args.days, seed: args.seed })?;
    let cutoff = sales::FIRST_DAY + (args.days - args.horizon) as i32;
    let day = || col(DATE).cast(DataType::Int32);
    let history = data.clone().lazy().filter(day().lt(lit(cutoff))).collect()?;
    // What really happened over the horizon; the requests are its keys and dates alone.
    let actual = data.lazy().filter(day().gt_eq(lit(cutoff))).collect()?;
    let requests = actual.select(SERIES.iter().copied().chain([DATE]))?;
    println!(
        "    history {} rows up to {}, forecasting {} rows",
        history.height(),
        date(cutoff - 1),
        requests.height()
    );

    match registry.create_model(CreateModel::new(name.clone()).description("Daily unit sales per store and item")).await
    {
        Ok(_) | Err(RegistryError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }

    let mut versions = Vec::new();
    for (index, candidate) in CANDIDATES.iter().enumerate() {
        step(&format!("training candidate {}: {}", index + 1, candidate.description));
        let started = Instant::now();
        let model = ForecastParams::new(TARGET, DATE, SERIES, candidate.algorithm)
            .lags(candidate.lags.iter().copied())
            .yearly(candidate.yearly)
            .check()?
            .fit(&history)?;
        println!("    fitted in {:.2?} on {} features", started.elapsed(), model.weights().feature_names.len());
        let version = register(&registry, &name, &model, candidate.description, &requests).await?;
        println!("    registered {MODEL} version {version}");
        versions.push(version);
        if index == 0 {
            match registry.set_alias(SetAlias::new(name.clone(), "champion", version).mode(AliasMode::Create)).await {
                Ok(_) => println!("    champion -> {version}"),
                Err(RegistryError::Precondition { found: Some(current), .. }) => {
                    println!("    champion stays at {current} (set by an earlier run)")
                }
                Err(e) => return Err(e.into()),
            }
            step("forecasting every store × item by alias");
            let (served_by, forecast) = forecast(&registry, &flavors, "champion", &requests).await?;
            show(served_by, &forecast, &actual, cutoff)?;
        }
    }

    step("comparing the versions on the days that really happened");
    // The new candidates, and the champion even when an earlier run registered it.
    let champion = registry.version_by_alias(&name, "champion").await?.version;
    if !versions.contains(&champion) {
        versions.insert(0, champion);
    }
    let mut scores = Vec::new();
    for version in &versions {
        let (_, forecast) = forecast(&registry, &flavors, &version.to_string(), &requests).await?;
        let m = quality(&forecast, &actual)?;
        let role = if *version == champion { " (champion)" } else { "" };
        println!(
            "    version {version}{role}: RMSE {:.2}  MAE {:.2}  MAPE {:.1}%",
            m["rmse"],
            m["mae"],
            100.0 * m["mape"]
        );
        scores.push((*version, m["rmse"]));
    }

    step("promoting");
    let champion_rmse = scores.iter().find(|(v, _)| *v == champion).map_or(f64::INFINITY, |(_, rmse)| *rmse);
    let (best, best_rmse) = scores.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((champion, f64::NAN));
    if best != champion && best_rmse < champion_rmse {
        let request = SetAlias::new(name.clone(), "champion", best).mode(AliasMode::Update(champion));
        match registry.set_alias(request).await {
            Ok(_) => println!("    champion {champion} -> {best} (compare-and-swap)"),
            Err(RegistryError::Precondition { found, .. }) => {
                println!("    champion moved meanwhile (now {found:?}); not promoting over someone else's decision")
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        println!("    champion {champion} stays: no version forecasts better");
    }

    step("the same scoring code, by alias");
    let (served_by, mut forecast) = forecast(&registry, &flavors, "champion", &requests).await?;
    show(served_by, &forecast, &actual, cutoff)?;
    let path = args.dir.join("forecasts").join("champion.parquet");
    std::fs::create_dir_all(path.parent().unwrap_or(&args.dir))?;
    write_parquet(&mut forecast, &path)?;
    println!("    forecasts -> {}", path.display());
    Ok(())
}

async fn register(
    registry: &dyn Registry,
    name: &ModelName,
    model: &ForecastModel,
    description: &str,
    requests: &DataFrame,
) -> Result<u64, Box<dyn std::error::Error>> {
    let package = model.package(Some(requests))?;
    let version = registry
        .create_version(
            CreateVersion::new(name.clone(), package)
                .description(description)
                .tag("lags", format!("{:?}", model.spec().lags))
                .tag("algorithm", model.weights().algorithm.as_str()),
        )
        .await?;
    Ok(version.version)
}

/// Forecasts `requests` with the version behind `alias_or_version` (`champion` or `2`).
async fn forecast(
    registry: &dyn Registry,
    flavors: &FlavorRegistry,
    alias_or_version: &str,
    requests: &DataFrame,
) -> Result<(u64, DataFrame), Box<dyn std::error::Error>> {
    let separator = if alias_or_version.parse::<u64>().is_ok() { "/" } else { "@" };
    let uri: ModelUri = format!("models:/{MODEL}{separator}{alias_or_version}").parse()?;
    let scorer = BatchScorer::load(registry, &uri, flavors).await?;
    let started = Instant::now();
    let forecast = scorer.score(requests)?;
    if separator == "@" {
        println!(
            "    {uri} = version {}: {} forecasts in {:.2?}",
            scorer.version(),
            forecast.height(),
            started.elapsed()
        );
    }
    Ok((scorer.version(), forecast))
}

fn quality(forecast: &DataFrame, actual: &DataFrame) -> Result<Metrics, Box<dyn std::error::Error>> {
    let predicted: Vec<f64> = forecast.column("prediction")?.f64()?.into_no_null_iter().collect();
    let truth: Vec<f64> = actual.column(TARGET)?.f64()?.into_no_null_iter().collect();
    Ok(regression_metrics(&truth, &predicted))
}

/// Total sales per day over every series, forecast beside actual, for the first two weeks.
fn show(version: u64, forecast: &DataFrame, actual: &DataFrame, cutoff: i32) -> Result<(), Box<dyn std::error::Error>> {
    let both = forecast.select([DATE, "prediction"])?.hstack(&[actual.column(TARGET)?.clone()])?;
    let totals = both
        .lazy()
        .group_by([col(DATE)])
        .agg([col("prediction").sum(), col(TARGET).sum()])
        .sort([DATE], SortMultipleOptions::default())
        .limit(14)
        .collect()?;
    let m = quality(forecast, actual)?;
    println!("    version {version}, RMSE {:.2}, MAPE {:.1}% over every series and day", m["rmse"], 100.0 * m["mape"]);
    println!("    {:<12} {:<4} {:>10} {:>10}", "date", "day", "forecast", "actual");
    let days = totals.column(DATE)?.cast(&DataType::Int32)?;
    let (predicted, sold) = (totals.column("prediction")?.f64()?, totals.column(TARGET)?.f64()?);
    for ((day, p), s) in days.i32()?.iter().zip(predicted.iter()).zip(sold.iter()) {
        let day = day.unwrap_or(cutoff);
        let weekday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(day + 3).rem_euclid(7) as usize];
        println!("    {:<12} {weekday:<4} {:>10.0} {:>10.0}", date(day), p.unwrap_or(f64::NAN), s.unwrap_or(f64::NAN));
    }
    Ok(())
}

fn date(day: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(day + 719_163).map_or_else(|| day.to_string(), |d| d.to_string())
}

fn step(what: &str) {
    println!("==> {what}");
}
