//! Frame work kept off the async executor.

use crate::error::{Error, Result};

/// Runs Polars work off the async executor: it is CPU-bound, and Polars' query engine
/// blocks in place, which a current-thread runtime forbids.
pub(crate) async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::InvalidArgument(format!("a frame computation panicked or was cancelled: {e}")))?
}
