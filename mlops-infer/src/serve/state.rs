//! `GET /serving-endpoints` and `GET /serving-endpoints/{name}`: each endpoint as
//! Databricks describes a serving endpoint (`state.ready`, `config.served_entities`,
//! `config.traffic_config.routes`), with what each route's model source knows of the URI it
//! follows.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::endpoint::{Endpoint, Route, StickyKey};
use super::{ModelServer, ServeError};

pub(super) async fn list_endpoints(State(server): State<Arc<ModelServer>>) -> Response {
    let endpoints: Vec<Value> = server.endpoints.iter().map(|(name, endpoint)| describe(name, endpoint)).collect();
    json_answer(&json!({ "endpoints": endpoints }))
}

pub(super) async fn endpoint_state(State(server): State<Arc<ModelServer>>, Path(name): Path<String>) -> Response {
    match server.endpoints.get(&name) {
        Some(endpoint) => json_answer(&describe(&name, endpoint)),
        None => {
            let known: Vec<&str> = server.endpoints.keys().map(String::as_str).collect();
            ServeError::not_found(format!("no endpoint `{name}` (endpoints: {})", known.join(", "))).into_response()
        }
    }
}

fn json_answer(value: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// The endpoint's state and configuration.
pub(super) fn describe(name: &str, endpoint: &Endpoint) -> Value {
    let mut not_ready = Vec::new();
    let mut problems = Vec::new();
    let mut entities = Vec::new();
    for route in &endpoint.routes {
        let (entity, problem) = served_entity(route, false);
        match problem {
            Some(Trouble::NotLoaded) => not_ready.push(format!("route `{}` has no model loaded yet", route.name)),
            Some(Trouble::Problem(problem)) => problems.push(format!("route `{}`: {problem}", route.name)),
            None => {}
        }
        entities.push(entity);
    }
    entities.extend(endpoint.shadows.iter().map(|route| served_entity(route, true).0));
    let traffic: Vec<Value> = endpoint
        .routes
        .iter()
        .map(|r| json!({ "served_model_name": r.name, "traffic_percentage": r.percent }))
        .collect();
    let sticky = match &endpoint.sticky {
        Some(StickyKey::Header(header)) => json!({ "header": header.as_str() }),
        Some(StickyKey::Column(column)) => json!({ "column": column }),
        None => Value::Null,
    };
    // Ready means every serving route can answer; a route that answers with a model that
    // stopped following its URI is a problem, not a reason to refuse traffic.
    let mut state = if not_ready.is_empty() {
        json!({ "ready": "READY" })
    } else {
        json!({ "ready": "NOT_READY", "reason": not_ready.join("; ") })
    };
    if !problems.is_empty() {
        state["problems"] = json!(problems);
    }
    json!({
        "name": name,
        "state": state,
        "config": {
            "served_entities": entities,
            "traffic_config": { "routes": traffic },
            "sticky": sticky,
        },
    })
}

/// What is wrong with a route.
enum Trouble {
    NotLoaded,
    Problem(String),
}

/// One route as a served entity, and what is wrong with it, if anything.
fn served_entity(route: &Route, shadow: bool) -> (Value, Option<Trouble>) {
    let loaded = route.source.current();
    let problem = match &loaded {
        None => Some(Trouble::NotLoaded),
        Some(_) => route.source.problem().map(Trouble::Problem),
    };
    let following = route.source.following().map(|status| {
        json!({
            "target_version": status.target_version.to_string(),
            "seconds_since_confirmed": status.since_confirmed.as_secs_f64(),
            "last_swap": DateTime::<Utc>::from(status.serving_since).to_rfc3339(),
            "polling": status.polling,
            "last_refresh_error": status.last_error,
        })
    });
    let deployment = match (&loaded, &problem) {
        (None, _) => "DEPLOYMENT_CREATING",
        (Some(_), None) => "DEPLOYMENT_READY",
        (Some(_), Some(_)) => "DEPLOYMENT_DEGRADED",
    };
    let entity = json!({
        "name": route.name,
        "entity_name": loaded.as_ref().map(|l| l.version.name.to_string()),
        // Databricks gives versions as strings.
        "entity_version": loaded.as_ref().map(|l| l.version.version.to_string()),
        "shadow": shadow,
        "state": { "deployment": deployment, "deployment_state_message": match &problem {
            None => String::new(),
            Some(Trouble::NotLoaded) => "no model loaded yet".to_owned(),
            Some(Trouble::Problem(problem)) => problem.clone(),
        } },
        "following": following,
    });
    (entity, problem)
}
