//! The scripted OpenAI-compatible judge on a loopback port, for running `rag_eval` (and the
//! evaluation benchmarks) without a model server. It grades by word overlap; see
//! `mlops_eval::testing` for what it answers.
//!
//! ```text
//! cargo run --release --features judge-server --example judge_server -- --port 8765
//! ```

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use mlops_eval::testing::{JudgeServer, JudgeServerConfig};

#[derive(Parser, Debug)]
#[command(about = "A scripted OpenAI-compatible judge on loopback")]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Milliseconds every reply waits (the judge's latency).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Answer 429 to requests beyond this many in flight.
    #[arg(long)]
    max_in_flight: Option<usize>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config =
        JudgeServerConfig { latency: Duration::from_millis(args.latency_ms), max_in_flight: args.max_in_flight };
    let server = JudgeServer::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)), config).await?;
    // The first line is the base URL, for scripts that start the server on port 0.
    println!("{}", server.base_url());
    std::io::stdout().flush()?;
    tokio::select! {
        () = server.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
