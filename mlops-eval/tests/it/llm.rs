//! The chat client against a scripted judge on loopback: formats, retries, rate limits,
//! timeouts, usage and cost, the concurrency limit and the cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mlops_eval::llm::{
    AdaptiveLimit, Backoff, CachedChat, ChatMessage, ChatModel, ChatParams, ChatRequest, LlmError, OpenAiChat, Pricing,
};
use mlops_eval::testing::{JudgeServer, JudgeServerConfig};

fn quick_retries() -> Backoff {
    Backoff {
        max_retries: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

fn client(server: &JudgeServer) -> OpenAiChat {
    OpenAiChat::builder(server.base_url(), "judge-model")
        .bearer_token("secret-token")
        .header("x-gateway-route", "judges")
        .retry(quick_retries())
        .timeout(Duration::from_secs(2))
        .pricing(Pricing::per_million(2.0, 10.0))
        .build()
        .unwrap()
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user(text)]).params(ChatParams {
        temperature: Some(0.0),
        max_tokens: Some(50),
        top_p: Some(1.0),
        seed: Some(7),
    })
}

#[tokio::test]
async fn sends_the_openai_request_and_reads_content_usage_and_cost() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let judge = client(&server);
    let reply = judge.chat(&ask("grade this [[judge:score-4]]")).await.unwrap();
    assert_eq!(reply.content, "score: 4\njustification: The output was compared with the additional information.");
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    assert_eq!((reply.usage.prompt_tokens, reply.usage.completion_tokens), (3, 11));
    assert!((reply.cost - (3.0 * 2.0 + 11.0 * 10.0) / 1e6).abs() < 1e-15);
    assert_eq!(reply.attempts, 1);
    assert!(!reply.cached);

    let body = &server.bodies()[0];
    assert_eq!(body["model"], "judge-model");
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["temperature"], 0.0);
    assert_eq!(body["max_tokens"], 50);
    assert_eq!(body["top_p"], 1.0);
    assert_eq!(body["seed"], 7);
    assert!(body.get("response_format").is_none(), "structured output is off by default");

    let totals = judge.meter().totals();
    assert_eq!((totals.calls, totals.usage.total(), totals.failures), (1, 14, 0));
}

#[tokio::test]
async fn sends_the_schema_when_structured_output_is_on() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let judge = OpenAiChat::builder(server.base_url(), "m").structured_output(true).build().unwrap();
    let request = ask("x").response_schema(mlops_eval::llm::ResponseSchema {
        name: "grade".into(),
        schema: serde_json::json!({ "type": "object" }),
    });
    judge.chat(&request).await.unwrap();
    let format = &server.bodies()[0]["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "grade");
    assert_eq!(format["json_schema"]["strict"], true);
}

#[tokio::test]
async fn retries_rate_limits_after_the_wait_the_server_asks_for() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let judge = client(&server);
    let started = Instant::now();
    let reply = judge.chat(&ask("[[judge:rate-limit-2]]")).await.unwrap();
    assert_eq!(reply.attempts, 3);
    assert!(started.elapsed() >= Duration::from_secs(2), "two `Retry-After: 1` waits: {:?}", started.elapsed());
    assert_eq!(server.requests(), 3);
    assert_eq!(judge.meter().totals().retries, 2);
    // Each 429 halved the limit (8 -> 4 -> 2); the success then grew it a little.
    assert_eq!(judge.limit().current(), 2);
}

#[tokio::test]
async fn retries_server_errors_and_gives_up_with_the_status_after_the_last_attempt() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let judge = client(&server);
    let reply = judge.chat(&ask("[[judge:error-1]]")).await.unwrap();
    assert_eq!(reply.attempts, 2);

    let error = judge.chat(&ask("[[judge:error-100]]")).await.unwrap_err();
    match &error {
        LlmError::Status { status, attempts, body, .. } => {
            assert_eq!((*status, *attempts), (500, 4));
            assert_eq!(body, "the judge crashed");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(error.to_string().contains("answered 500 after 4 attempt(s): the judge crashed"), "{error}");
    let totals = judge.meter().totals();
    assert_eq!((totals.calls, totals.failures, totals.retries), (1, 1, 4));
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_is_a_timeout_error() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let judge = OpenAiChat::builder(server.base_url(), "m")
        .timeout(Duration::from_millis(200))
        .retry(Backoff { max_retries: 1, ..quick_retries() })
        .build()
        .unwrap();
    let started = Instant::now();
    let error = judge.chat(&ask("[[judge:slow]]")).await.unwrap_err();
    assert!(matches!(error, LlmError::Timeout { attempts: 2, .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_unreachable_server_or_a_bad_configuration_is_named() {
    let judge = OpenAiChat::builder("http://127.0.0.1:9/v1", "m")
        .retry(Backoff { max_retries: 0, ..quick_retries() })
        .build()
        .unwrap();
    let error = judge.chat(&ask("x")).await.unwrap_err();
    assert!(matches!(error, LlmError::Connection { attempts: 1, .. }), "{error:?}");
    assert!(error.to_string().contains("http://127.0.0.1:9/v1/chat/completions"), "{error}");

    let error = OpenAiChat::builder("localhost:8000", "m").build().unwrap_err();
    assert!(error.to_string().contains("`localhost:8000` is not an http(s) URL"), "{error}");
    let error = OpenAiChat::builder("http://x", "m").bearer_token_from_env("MLOPS_TEST_UNSET_TOKEN").unwrap_err();
    assert!(error.to_string().contains("`MLOPS_TEST_UNSET_TOKEN`"), "{error}");
    let error = OpenAiChat::builder("http://x", "m").header("bad header", "v").build().unwrap_err();
    assert!(error.to_string().contains("`bad header`"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adaptive_limit_backs_off_when_the_server_rate_limits() {
    // The server takes 4 requests at a time and rate limits the rest; the client starts at
    // 16 and must settle at or under what the server accepts.
    let server = JudgeServer::start(JudgeServerConfig { latency: Duration::from_millis(50), max_in_flight: Some(4) })
        .await
        .unwrap();
    let judge = Arc::new(
        OpenAiChat::builder(server.base_url(), "m")
            .concurrency(AdaptiveLimit::new(16, 1, 32))
            .retry(Backoff { max_retries: 20, ..quick_retries() })
            .build()
            .unwrap(),
    );
    let calls = (0..64).map(|i| {
        let judge = Arc::clone(&judge);
        tokio::spawn(async move { judge.chat(&ask(&format!("row {i} [[judge:score-3]]"))).await })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap().content.lines().next(), Some("score: 3"));
    }
    let totals = judge.meter().totals();
    assert_eq!(totals.calls, 64, "no row is lost to rate limiting");
    assert!(totals.retries > 0, "the server must have rate limited some calls");
    assert!(judge.limit().current() <= 8, "the limit came down from 16: {}", judge.limit().current());
}

#[tokio::test]
async fn the_cache_replays_unchanged_requests_and_replays_recordings_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let judge = Arc::new(client(&server));
    let cached = CachedChat::new(judge.clone(), dir.path());
    let first = cached.chat(&ask("[[judge:score-2]] first")).await.unwrap();
    let again = cached.chat(&ask("[[judge:score-2]] first")).await.unwrap();
    assert_eq!(first.content, again.content);
    assert!(!first.cached && again.cached);
    assert_eq!((again.cost, again.attempts), (0.0, 0));
    assert_eq!(server.requests(), 1, "the second call was served from disk");
    // Any change to the request is another key.
    let mut other = ask("[[judge:score-2]] first");
    other.params.temperature = Some(0.5);
    cached.chat(&other).await.unwrap();
    assert_eq!(server.requests(), 2);
    assert_eq!(cached.stats(), mlops_eval::llm::CacheStats { hits: 1, misses: 2 });

    // Replay with no server behind: recorded requests answer, others are refused by key.
    drop(server);
    let replay = CachedChat::replay_only("judge-model", dir.path());
    assert_eq!(replay.chat(&ask("[[judge:score-2]] first")).await.unwrap().content, first.content);
    let error = replay.chat(&ask("never recorded")).await.unwrap_err();
    assert!(matches!(error, LlmError::NotRecorded { .. }), "{error:?}");
    // Another model name never shares recordings.
    let error =
        CachedChat::replay_only("other-model", dir.path()).chat(&ask("[[judge:score-2]] first")).await.unwrap_err();
    assert!(matches!(error, LlmError::NotRecorded { .. }));
    // Recordings are whole files only.
    let leftovers: Vec<_> = walk(dir.path()).into_iter().filter(|p| !p.ends_with(".json")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}
