//! The request to the paste service, built once per HTTP client: the POST
//! with the headers that do not change from one paste to the next, and the
//! pastebin form's fixed fields. The publisher sends each document on it;
//! the sink's stage ceiling in `benches/stages.rs` publishes through the
//! same request.

use crate::config::{PublisherKind, PublisherSettings};
use crate::sink::verdict::PastebinForm;

/// The pastebin form's fixed fields (key, option, format, privacy, expiry,
/// user key), encoded once for every paste.
pub fn pastebin_form(p: &PublisherSettings) -> PastebinForm {
    let private = p.paste_private.to_string();
    let mut fixed = vec![
        ("api_dev_key", p.api_dev_key.expose()),
        ("api_option", "paste"),
        ("api_paste_format", "json"),
        ("api_paste_private", private.as_str()),
        ("api_paste_expire_date", p.paste_expire_date.as_str()),
    ];
    if !p.api_user_key.is_empty() {
        fixed.push(("api_user_key", p.api_user_key.expose()));
    }
    PastebinForm::new(fixed)
}

/// A new HTTP client and, on it, the POST to `uri` with the headers that do
/// not change from one paste to the next; each attempt sends a body on it.
/// awc clients are !Send: call it on the arbiter that uses it.
pub fn post_request(p: &PublisherSettings, uri: awc::http::Uri) -> awc::FrozenClientRequest {
    let connector = awc::Connector::new().limit(p.concurrency.max()).timeout(p.timeout);
    // Redirects are answers, not detours ([`crate::sink::verdict::classify_redirect`]),
    // and the middleware that follows them costs CPU per paste.
    // No client timeout: the one around each whole attempt covers it.
    let client = awc::Client::builder().connector(connector).disable_timeout().disable_redirects().finish();
    let request = client.post(uri);
    let mut request = match p.kind {
        PublisherKind::Pastebin => request.insert_header(("content-type", "application/x-www-form-urlencoded")),
        PublisherKind::Webhook => request.insert_header(("content-type", "application/json")),
        // The multipart boundary differs per request: added as each is sent.
        PublisherKind::Upload => request,
    };
    // Validated as a header name and value with these same types.
    for (name, value) in &p.headers {
        request = request.insert_header((name.as_str(), value.expose()));
    }
    request.freeze().expect("publisher.url is validated with the client's own parser")
}
