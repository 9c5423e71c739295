//! A local server that speaks pastebin.com's API, for the demo and the tests.
//!
//! `POST /api/api_post.php` takes the same form as pastebin.com and answers
//! the same way: the paste's URL, or `Bad API request, ...` as text with
//! status 200. `GET /raw/<key>` returns a paste; `GET /_pastes` lists all of
//! them as JSON (not part of pastebin's API: it lets tests and the demo see
//! what was published). With `--dir`, pastes are also written there as files.
//!
//! For the far-sink benchmark and tests it can stand for a distant, fragile
//! service: `--delay` answers every paste after that long; with `--knee N`
//! the delay grows by half for each request in flight beyond N, and from 2N
//! in flight on it answers 503 at once. `GET /_stats` says how many were
//! served and refused and the most in flight at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use actix_web::{web, App, HttpResponse, HttpServer};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;

/// pastebin.com's limit for a free account.
const MAX_PASTE: usize = 512 * 1024;

#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// When set, any other key is refused with `invalid api_dev_key`.
    pub api_dev_key: Option<String>,
    /// Base of the URLs handed out; default `http://<bound address>`.
    pub public_url: Option<String>,
    pub dir: Option<PathBuf>,
    /// Every paste is answered after this long.
    pub delay: std::time::Duration,
    /// 0: none. Else the delay grows beyond this many requests in flight,
    /// and from twice as many on the answer is 503.
    pub knee: usize,
}

#[derive(Serialize, Default, Clone, Copy)]
struct Stats {
    served: u64,
    overloaded: u64,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Serialize, Clone)]
struct Paste {
    key: String,
    name: String,
    format: String,
    private: String,
    expire: String,
    content: String,
    /// When it arrived, in milliseconds since the Unix epoch.
    received_ms: u64,
}

struct State {
    options: Options,
    base: String,
    pastes: Mutex<Vec<Paste>>,
    stats: Mutex<Stats>,
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Mutex<Stats>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}

/// Binds, prints `listening on <base URL>` on stdout, and serves until stopped.
pub async fn serve(options: Options) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(options.listen)?;
    let addr = listener.local_addr()?;
    let base = options.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_owned();
    if let Some(dir) = &options.dir {
        std::fs::create_dir_all(dir)?;
    }
    println!("listening on {base}");
    use std::io::Write;
    std::io::stdout().flush()?;
    let state =
        web::Data::new(State { options, base, pastes: Mutex::new(Vec::new()), stats: Mutex::new(Stats::default()) });
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::FormConfig::default().limit(4 * MAX_PASTE))
            .route("/api/api_post.php", web::post().to(post))
            .route("/_pastes", web::get().to(list))
            .route("/_stats", web::get().to(stats))
            .route("/raw/{key}", web::get().to(raw))
            .route("/{key}", web::get().to(raw))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}

fn text(body: impl Into<String>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(body.into())
}

async fn post(state: web::Data<State>, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let now_in_flight = {
        let mut st = state.stats.lock().unwrap();
        st.in_flight += 1;
        st.max_in_flight = st.max_in_flight.max(st.in_flight);
        st.in_flight
    };
    let _counted = InFlight(&state.stats);
    let (delay, knee) = (state.options.delay, state.options.knee);
    if knee > 0 && now_in_flight >= 2 * knee {
        state.stats.lock().unwrap().overloaded += 1;
        return HttpResponse::ServiceUnavailable().body("overloaded");
    }
    if !delay.is_zero() {
        let over = if knee > 0 { now_in_flight.saturating_sub(knee) as u32 } else { 0 };
        actix_rt::time::sleep(delay + delay * over / 2).await;
    }
    state.stats.lock().unwrap().served += 1;
    let f = form.into_inner();
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    if let Some(key) = &state.options.api_dev_key {
        if get("api_dev_key") != key {
            return text("Bad API request, invalid api_dev_key");
        }
    }
    if get("api_option") != "paste" {
        return text("Bad API request, invalid api_option");
    }
    let content = get("api_paste_code");
    if content.is_empty() {
        return text("Bad API request, api_paste_code was empty");
    }
    if content.len() > MAX_PASTE {
        return text("Bad API request, maximum paste file size exceeded");
    }
    if !matches!(get("api_paste_private"), "" | "0" | "1" | "2") {
        return text("Bad API request, invalid api_paste_private");
    }
    let key = Alphanumeric.sample_string(&mut rand::rng(), 8);
    let paste = Paste {
        key: key.clone(),
        name: get("api_paste_name").to_owned(),
        format: get("api_paste_format").to_owned(),
        private: get("api_paste_private").to_owned(),
        expire: get("api_paste_expire_date").to_owned(),
        content: content.to_owned(),
        received_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    if let Some(dir) = &state.options.dir {
        if let Err(e) = std::fs::write(dir.join(format!("{key}.json")), content) {
            return HttpResponse::InternalServerError().body(format!("cannot store the paste: {e}"));
        }
    }
    state.pastes.lock().unwrap().push(paste);
    text(format!("{}/{key}", state.base))
}

async fn raw(state: web::Data<State>, key: web::Path<String>) -> HttpResponse {
    let pastes = state.pastes.lock().unwrap();
    match pastes.iter().find(|p| p.key == *key) {
        Some(p) => HttpResponse::Ok().content_type("application/json").body(p.content.clone()),
        None => HttpResponse::NotFound().body("Not Found"),
    }
}

async fn stats(state: web::Data<State>) -> HttpResponse {
    let st = *state.stats.lock().unwrap();
    HttpResponse::Ok().json(st)
}

async fn list(state: web::Data<State>) -> HttpResponse {
    let pastes = state.pastes.lock().unwrap().clone();
    HttpResponse::Ok().json(pastes)
}
