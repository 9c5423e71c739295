//! The operations endpoints on `http.listen` (actix-web, one worker):
//!
//! - `GET /metrics`: Prometheus text ([`Metrics::render`]).
//! - `GET /healthz`: 200 while the process runs and its actor system answers.
//! - `GET /readyz`: 200 when Redis and ClickHouse answer now (a PING and a
//!   `SELECT version()`, probed on each request with a short timeout) and the
//!   paste service has not refused us; otherwise 503. The JSON body names what
//!   is wrong, and lists every dependency currently failing in the pipeline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

struct State {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
}

/// Binds `http.listen` and returns the server; run it by awaiting or spawning.
pub fn server(settings: Arc<Settings>, metrics: Arc<Metrics>) -> std::io::Result<actix_web::dev::Server> {
    let listen = settings.http.listen;
    let state = web::Data::new(State { settings, metrics });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(render_metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(listen)?
    .run())
}

async fn render_metrics(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(state.metrics.render())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    let (ready, body) = readiness(&state.settings, &state.metrics).await;
    let mut resp = if ready { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    resp.json(body)
}

/// Probes Redis and ClickHouse now, and reads the paste service's state.
pub async fn readiness(settings: &Settings, metrics: &Metrics) -> (bool, serde_json::Value) {
    let (redis, clickhouse) = futures_util::join!(probe_redis(settings), probe_clickhouse(settings));
    let mut problems = BTreeMap::new();
    if let Err(e) = redis {
        problems.insert("redis", e);
    }
    if let Err(e) = clickhouse {
        problems.insert("clickhouse", e);
    }
    let failing: BTreeMap<&str, String> = metrics.problems().into_iter().map(|(d, why)| (d.label(), why)).collect();
    if metrics.is_refused() {
        let why = failing.get(crate::metrics::Dependency::PasteService.label()).cloned().unwrap_or_default();
        problems.insert("paste_service", why);
    }
    let ready = problems.is_empty();
    (ready, json!({ "ready": ready, "problems": problems, "failing": failing }))
}

async fn probe_redis(settings: &Settings) -> Result<(), String> {
    let probe = async {
        let mut c = crate::queue::connection(settings.redis.url.expose(), PROBE_TIMEOUT).await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

async fn probe_clickhouse(settings: &Settings) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, Db::connect(&settings.clickhouse)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}
