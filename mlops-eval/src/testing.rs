//! A scripted OpenAI-compatible judge server for tests, examples and benchmarks.
//!
//! [`JudgeServer`] answers `POST /v1/chat/completions` on loopback the way real models do,
//! well and badly, so the real client, parser and retry paths are exercised without a
//! model. By default it grades the fenced `Output:` of a judge prompt by word overlap
//! (score 1 to 5): the F1 of its words against a `reference`, or the share of its words
//! found in a `context`; it replies in two-line text. A marker
//! `[[judge:<mode>]]` anywhere in the prompt picks another behaviour, and `[[score:N]]` sets
//! the score any mode replies with:
//!
//! | mode | reply |
//! |---|---|
//! | `json` / `fenced-json` / `lines` / `prose` | the grade as JSON, JSON in a code fence, two lines, two lines after some prose |
//! | `score-N` | the grade with score `N` (any number, in the default format) |
//! | `echo` | the graded output quoted back, then the grade |
//! | `truncated` | `{"score": ` cut at `max_tokens` (`finish_reason: length`) |
//! | `garbage` | no score at all, every time |
//! | `garbage-once` | no score, then a good reply to the repair request |
//! | `rate-limit-N` | 429 with `Retry-After: 1` the first `N` times this prompt arrives |
//! | `error-N` | 500 the first `N` times this prompt arrives |
//! | `slow` | the grade after 10 seconds (past any test timeout) |
//!
//! A pairwise prompt (answers `Output A:` and `Output B:`) is answered `winner: A`, `B` or
//! `tie` by the same word overlap with the fenced reference answer; with `[[judge:always-a]]`
//! in either answer the judge always picks the first one, as a judge with position bias
//! would.
//!
//! Usage is reported as one token per whitespace-separated word of the prompt and reply.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::judge::fenced_blocks;

/// Request bodies kept for [`JudgeServer::bodies`], so a long-running server stays small.
const KEPT_BODIES: usize = 10_000;

/// Settings of a [`JudgeServer`].
#[derive(Debug, Clone, Default)]
pub struct JudgeServerConfig {
    /// Time every reply waits before it is sent (the judge's latency).
    pub latency: Duration,
    /// Answer 429 (with `Retry-After: 1`) to requests beyond this many in flight.
    pub max_in_flight: Option<usize>,
}

/// A scripted judge on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct JudgeServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct ServerState {
    config: JudgeServerConfig,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    seen: Mutex<HashMap<u64, u32>>,
    bodies: Mutex<VecDeque<Value>>,
}

impl JudgeServer {
    /// Starts a server on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(config: JudgeServerConfig) -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().expect("a valid loopback address"), config).await
    }

    /// Starts a server on `addr`.
    ///
    /// # Errors
    /// When `addr` cannot be bound.
    pub async fn bind(addr: SocketAddr, config: JudgeServerConfig) -> std::io::Result<Self> {
        let state = Arc::new(ServerState { config, ..ServerState::default() });
        let router = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/chat/completions", post(complete))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { addr, state, task })
    }

    /// The base URL to give a client (`http://127.0.0.1:<port>/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far (rejected ones included).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// The most requests that were in flight at once.
    pub fn peak_in_flight(&self) -> usize {
        self.state.peak_in_flight.load(Ordering::Relaxed)
    }

    /// The request bodies received so far (the latest 10,000), in arrival order.
    pub fn bodies(&self) -> Vec<Value> {
        self.state.bodies.lock().iter().cloned().collect()
    }

    /// Serves until the task is aborted (for a standalone server process).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for JudgeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct InFlight<'a>(&'a ServerState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn complete(State(state): State<Arc<ServerState>>, body: String) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = InFlight(&state);
    state.peak_in_flight.fetch_max(now, Ordering::Relaxed);
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    {
        let mut bodies = state.bodies.lock();
        if bodies.len() == KEPT_BODIES {
            bodies.pop_front();
        }
        bodies.push_back(request.clone());
    }
    if state.config.max_in_flight.is_some_and(|max| now > max) {
        return rate_limited();
    }
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let prompt = messages.first().and_then(|m| m["content"].as_str()).unwrap_or_default().to_owned();
    let repair = messages.len() > 1;
    let mode = mode_of(&prompt);
    let seen = {
        let mut hasher = DefaultHasher::new();
        prompt.hash(&mut hasher);
        let mut seen = state.seen.lock();
        let count = seen.entry(hasher.finish()).or_insert(0);
        *count += 1;
        *count
    };
    if let Some(n) = mode.strip_prefix("rate-limit-").and_then(|n| n.parse::<u32>().ok())
        && seen <= n
    {
        return rate_limited();
    }
    if let Some(n) = mode.strip_prefix("error-").and_then(|n| n.parse::<u32>().ok())
        && seen <= n
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the judge crashed").into_response();
    }
    let delay = if mode == "slow" { Duration::from_secs(10) } else { state.config.latency };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let score = mode
        .strip_prefix("score-")
        .or_else(|| marker(&prompt, "score"))
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| overlap_score(&prompt));
    let justification = "The output was compared with the additional information.";
    if prompt.contains("\n\nOutput A:\n") {
        let content = format!("winner: {}\njustification: {justification}", pairwise_winner(&prompt, &mode));
        return completion(&request, &messages, content, "stop", &state);
    }
    let (content, finish) = match (mode.as_str(), repair) {
        ("garbage", _) | ("garbage-once", false) => ("I am not able to grade this output.".to_owned(), "stop"),
        ("truncated", false) => ("{\"score\": ".to_owned(), "length"),
        ("json", _) => (json!({ "score": score, "justification": justification }).to_string(), "stop"),
        ("fenced-json", _) => {
            (format!("```json\n{}\n```", json!({ "score": score, "justification": justification })), "stop")
        }
        ("echo", _) => (
            format!("The output reads:\n{}\n\nscore: {score}\njustification: {justification}", graded_output(&prompt)),
            "stop",
        ),
        ("prose", _) => (
            format!(
                "Let me compare the output with the context first.\nIt covers most facts.\n\nscore: {score}\njustification: {justification}"
            ),
            "stop",
        ),
        _ => (format!("score: {score}\njustification: {justification}"), "stop"),
    };
    completion(&request, &messages, content, finish, &state)
}

fn completion(request: &Value, messages: &[Value], content: String, finish: &str, state: &ServerState) -> Response {
    let words = |text: &str| text.split_whitespace().count();
    let prompt_tokens: usize = messages.iter().filter_map(|m| m["content"].as_str()).map(words).sum();
    let completion_tokens = words(&content);
    let reply = json!({
        "id": format!("chatcmpl-{}", state.requests.load(Ordering::Relaxed)),
        "object": "chat.completion",
        "created": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "model": request["model"],
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": finish }],
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                   "total_tokens": prompt_tokens + completion_tokens },
    });
    ([("content-type", "application/json")], reply.to_string()).into_response()
}

fn rate_limited() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "rate limited").into_response()
}

fn mode_of(prompt: &str) -> String {
    marker(prompt, "judge").unwrap_or_default().to_owned()
}

fn marker<'a>(prompt: &'a str, name: &str) -> Option<&'a str> {
    prompt.split(&format!("[[{name}:")).nth(1).and_then(|rest| rest.split("]]").next())
}

fn pairwise_winner(prompt: &str, mode: &str) -> &'static str {
    if mode == "always-a" {
        return "A";
    }
    let blocks = fenced_blocks(prompt);
    let block = |label: &str| blocks.iter().find(|(l, _)| *l == label).map(|(_, text)| text.as_str()).unwrap_or("");
    let reference: std::collections::HashSet<String> = words(block("Reference answer:")).into_iter().collect();
    let overlap = |text: &str| words(text).iter().filter(|w| reference.contains(*w)).count();
    let (a, b) = (overlap(block("Output A:")), overlap(block("Output B:")));
    match a.cmp(&b) {
        std::cmp::Ordering::Greater => "A",
        std::cmp::Ordering::Less => "B",
        std::cmp::Ordering::Equal => "tie",
    }
}

fn graded_output(prompt: &str) -> String {
    fenced_blocks(prompt).into_iter().find(|(label, _)| *label == "Output:").map(|(_, text)| text).unwrap_or_default()
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 3).map(str::to_lowercase).collect()
}

/// The words of the fenced value of grading-context key `key`, if the prompt has one.
fn context_words(prompt: &str, key: &str) -> Option<std::collections::HashSet<String>> {
    let at = prompt.find(&format!("key: {key}\nvalue:\n"))?;
    let (_, text) = fenced_blocks(&prompt[at..]).into_iter().next()?;
    Some(words(&text).into_iter().collect())
}

/// Against a `reference`: 1 + 4 × the F1 of the graded output's words and the reference's.
/// Against a `context` only: 1 + 4 × the share of the output's words found in the context
/// (what faithfulness asks). 3 with neither.
fn overlap_score(prompt: &str) -> f64 {
    let output = words(&graded_output(prompt));
    let distinct: std::collections::HashSet<&String> = output.iter().collect();
    if let Some(reference) = context_words(prompt, "reference") {
        let found = distinct.iter().filter(|w| reference.contains(**w)).count() as f64;
        if found == 0.0 {
            return 1.0;
        }
        let (precision, recall) = (found / distinct.len() as f64, found / reference.len() as f64);
        return (1.0 + 4.0 * 2.0 * precision * recall / (precision + recall)).round();
    }
    match context_words(prompt, "context") {
        Some(context) if !output.is_empty() => {
            let found = output.iter().filter(|w| context.contains(*w)).count();
            (1.0 + 4.0 * found as f64 / output.len() as f64).round()
        }
        _ => 3.0,
    }
}
