//! A Ballista executor that runs the parts of plans calling `predict` and `model_version`:
//! each version a plan names loads from `--registry` the first time a task needs it, and
//! tables are read from the stores given with `--store`.
//!
//! ```text
//! cargo run --release --features ballista --example ballista_executor -- \
//!     --scheduler-host scheduler.internal --registry s3://models/registry --store s3://lake
//! ```
//!
//! The registry and store flags are those of the `ballista_scheduler` example.

use clap::Parser;
use mlops_examples::cluster::{ClusterArgs, exit_on};
use mlops_infer::ballista::executor::executor_process::ExecutorProcessConfig;

#[derive(Parser, Debug)]
#[command(about = "A Ballista executor that scores with models from a registry")]
struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The most detailed log level written to standard error (Ballista's own log included).
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
    /// The scheduler's host.
    #[arg(long, default_value = "localhost")]
    scheduler_host: String,
    /// The scheduler's port.
    #[arg(long, default_value_t = 50050)]
    scheduler_port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_host: String,
    /// The address the scheduler and other executors reach this executor at.
    #[arg(long)]
    external_host: Option<String>,
    /// The port of the Arrow Flight service that serves shuffle data and results.
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// The port of the gRPC service the scheduler talks to.
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the machine's cores).
    #[arg(long)]
    vcores: Option<usize>,
    /// Where shuffle files are written (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt().with_max_level(args.log_level).with_writer(std::io::stderr).init();
    let models = exit_on(args.cluster.models());
    let defaults = ExecutorProcessConfig::default();
    let config = ExecutorProcessConfig {
        scheduler_host: args.scheduler_host,
        scheduler_port: args.scheduler_port,
        bind_host: args.bind_host,
        external_host: args.external_host,
        port: args.port,
        grpc_port: args.grpc_port,
        vcores: args.vcores.unwrap_or(defaults.vcores),
        work_dir: args.work_dir,
        ..defaults
    };
    exit_on(models.run_executor(config).await);
    std::process::ExitCode::SUCCESS
}
