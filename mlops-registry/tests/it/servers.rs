//! Test servers: found from environment variables that `scripts/test.sh` sets after
//! starting them. A missing server skips its tests with a printed reason, or fails them when
//! `MLOPS_REQUIRE_SERVERS=1` (as CI sets).

use mlops_registry::ObjectStoreRegistry;

/// Environment variable holding the S3-compatible server's endpoint, e.g. `http://127.0.0.1:9000`.
pub const S3_ENDPOINT: &str = "MLOPS_S3_ENDPOINT";
/// Environment variable holding the bucket the tests may use.
pub const S3_BUCKET: &str = "MLOPS_S3_BUCKET";

/// Environment variable holding the MLflow tracking server's address, e.g. `http://127.0.0.1:5000`.
pub const MLFLOW_URI: &str = "MLOPS_MLFLOW_URI";
/// Environment variable holding a Python interpreter with `mlflow` installed.
pub const PYTHON: &str = "MLOPS_PYTHON";

/// Returns `Some(value)` of `variable`, or `None` after saying why the test is skipped;
/// panics instead when servers are required.
pub fn server(variable: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("MLOPS_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => {
            panic!("{what} is required (MLOPS_REQUIRE_SERVERS=1) but {variable} is not set; run scripts/test.sh")
        }
        _ => {
            eprintln!("skipped: {what} not available ({variable} is not set; scripts/test.sh starts one)");
            None
        }
    }
}

/// The S3 bucket of the test server, as an `s3://` URL.
pub fn s3_bucket_url() -> Option<String> {
    server(S3_ENDPOINT, "an S3-compatible server")?;
    Some(format!("s3://{}", std::env::var(S3_BUCKET).unwrap_or_else(|_| "mlops-test".into())))
}

/// Store options for `url`: the test server's endpoint and dummy credentials for `s3://`.
pub fn options(url: &str) -> Vec<(String, String)> {
    if !url.starts_with("s3://") {
        return Vec::new();
    }
    let endpoint = std::env::var(S3_ENDPOINT).unwrap_or_default();
    [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Opens the registry at `url` with the test options.
pub fn open(url: &str) -> ObjectStoreRegistry {
    ObjectStoreRegistry::open(url, options(url)).unwrap()
}

/// A prefix no other test (or earlier run) uses.
pub fn unique_prefix(label: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{label}-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// A file of this crate's source tree, found through `CARGO_MANIFEST_DIR` as cargo sets it
/// when it runs the tests (not as it was at build time: a build directory shared by several
/// checkouts may run a binary built in another one).
pub fn test_file(relative: &str) -> std::path::PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    std::path::Path::new(&root).join(relative)
}
