//! One shape for retrying calls to a server: exponential backoff with jitter, never
//! shorter than a `Retry-After` the server sent, on `backon`. The MLflow client and the LLM
//! client (in mlops-eval) both take it.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

/// How failed calls are retried: up to `max_retries` more attempts after waits that start
/// at `initial_backoff` and double up to `max_backoff`, each with random jitter so clients
/// that failed together do not retry together; a server's `Retry-After` lengthens a wait,
/// and one over `max_retry_after` ends the retries instead of parking the call.
///
/// ```
/// use std::time::Duration;
/// use mlops_registry::Backoff;
///
/// let patient = Backoff { max_retries: 8, ..Backoff::default() };
/// assert_eq!(patient.initial_backoff, Duration::from_millis(500));
/// assert_eq!(Backoff::none().max_retries, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest wait the backoff grows to (a `Retry-After` may ask for more, up to
    /// `max_retry_after`).
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a server asking for more fails the call instead of
    /// parking it.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    /// Five retries from 500 ms up to 30 s, honouring a `Retry-After` of up to 2 minutes.
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// No retries: the first failure is the answer.
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }

    /// Runs `call` until it succeeds, fails with an error `transient` refuses, or the
    /// retries are spent; `retry_after` reads the wait a failure asked for. Returns the
    /// outcome of the last attempt and how many attempts were made.
    pub async fn retry<T, E, Fut>(
        &self,
        mut call: impl FnMut() -> Fut,
        transient: impl Fn(&E) -> bool,
        retry_after: impl Fn(&E) -> Option<Duration>,
    ) -> (Result<T, E>, u32)
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(self.max_retries as usize)
            .with_jitter();
        let max_retry_after = self.max_retry_after;
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let outcome = (|| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            call()
        })
        .retry(backoff)
        .when(|e| transient(e))
        .adjust(|error, wait| match retry_after(error) {
            Some(asked) if asked > max_retry_after => None,
            Some(asked) => wait.map(|w| w.max(asked)),
            None => wait,
        })
        .await;
        (outcome, attempts.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// A `Retry-After` header's wait: seconds, or an HTTP date from now (a date in the past
/// asks for no wait). `None` for anything else.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Backoff, parse_retry_after};

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert!(parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT").is_some_and(|d| d > Duration::from_secs(1)));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("99999999999999999999999"), None);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_counted_and_a_long_retry_after_stops_them() {
        let quick = Backoff {
            max_retries: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_retry_after: Duration::from_secs(1),
        };
        let mut left = 2;
        let (outcome, attempts) = quick
            .retry(
                || {
                    left -= 1;
                    let failed = left >= 0;
                    async move { if failed { Err("busy") } else { Ok(7) } }
                },
                |_| true,
                |_| None,
            )
            .await;
        assert_eq!((outcome, attempts), (Ok(7), 3));

        let (outcome, attempts) =
            quick.retry(|| async { Err::<(), _>("busy") }, |_| true, |_| Some(Duration::from_secs(60))).await;
        assert_eq!((outcome, attempts), (Err("busy"), 1));
        let (outcome, attempts) = quick.retry(|| async { Err::<(), _>("bad") }, |_| false, |_| None).await;
        assert_eq!((outcome, attempts), (Err("bad"), 1));
        let (_, attempts) = quick.retry(|| async { Err::<(), _>("busy") }, |_| true, |_| None).await;
        assert_eq!(attempts, 4);
    }
}
