//! A Ballista scheduler that plans queries calling `predict`, `model_version` and `score`:
//! the models they name load from `--registry`, the tables they read from the stores given
//! with `--store`.
//!
//! ```text
//! cargo run --release --features ballista --example ballista_scheduler -- \
//!     --registry s3://models/registry --store s3://lake --store-option aws_region=eu-west-1
//! ```
//!
//! `--registry` is an MLflow tracking server (`http(s)://`), an object-store URL or a local
//! directory, as for the `predict` example. Each `--store` is the URL of a bucket tables live
//! in (`s3://bucket`, `gs://`, `az://`), configured by the `--store-option key=value` flags
//! (object_store's keys: `aws_endpoint`, `aws_allow_http`, ...) and the store's usual
//! environment variables. Executors are started with the `ballista_executor` example, and
//! clients connect with `mlops_infer::ballista::remote_context("df://host:port", ...)`.

use clap::Parser;
use mlops_examples::cluster::{ClusterArgs, exit_on};
use mlops_infer::ballista::scheduler::config::SchedulerConfig;

#[derive(Parser, Debug)]
#[command(about = "A Ballista scheduler whose sessions score with models from a registry")]
struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The most detailed log level written to standard error (Ballista's own log included).
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_host: String,
    /// The address executors and clients reach this scheduler at.
    #[arg(long, default_value = "localhost")]
    external_host: String,
    /// The port to listen on.
    #[arg(long, default_value_t = 50050)]
    port: u16,
    /// Seconds without a heartbeat after which an executor is taken for dead and its tasks
    /// run elsewhere.
    #[arg(long, default_value_t = 180)]
    executor_timeout_seconds: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt().with_max_level(args.log_level).with_writer(std::io::stderr).init();
    let models = exit_on(args.cluster.models());
    let config = SchedulerConfig {
        bind_host: args.bind_host,
        external_host: args.external_host,
        bind_port: args.port,
        executor_timeout_seconds: args.executor_timeout_seconds,
        ..SchedulerConfig::default()
    };
    exit_on(models.run_scheduler(config).await);
    std::process::ExitCode::SUCCESS
}
