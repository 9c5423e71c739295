//! What a paste service's answer means: one pure function per protocol, and
//! where a generic sink's answer carries the URL.
//!
//! The publisher acts on [`Verdict`] alone. The variants say what to do, not
//! what happened: publish the URL, retry later, pause for a quota, stop because
//! we are refused, or count a failure against the task itself.

use std::time::{Duration, SystemTime};

/// What to do after one attempt to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The paste exists at this URL.
    Published(String),
    /// The service is unwell (5xx, 408, timeout, garbage): retry with backoff.
    Transient(String),
    /// Over quota: pause publishing, for `Retry-After` when the service gave one.
    OverQuota { retry_after: Option<Duration>, reason: String },
    /// The service refuses us (bad key, blocked IP): stop intake, keep every task.
    Refused(String),
    /// The service rejected this document: counts toward `max_attempts`.
    Rejected(String),
}

/// The body of a pastebin form POST. The fields that are the same for every
/// paste (key, options) are encoded once; each paste appends its document and
/// name, since building the whole form per paste showed in the drain
/// benchmark's profile (docs/performance.md).
#[derive(Debug, Clone)]
pub struct PastebinForm {
    fixed: String,
}

impl PastebinForm {
    pub fn new<'a>(fixed: impl IntoIterator<Item = (&'a str, &'a str)>) -> PastebinForm {
        PastebinForm { fixed: form_urlencoded::Serializer::new(String::new()).extend_pairs(fixed).finish() }
    }

    /// The form with `api_paste_code` and `api_paste_name` added.
    pub fn body(&self, document: &str, name: &str) -> String {
        let mut out = String::with_capacity(self.fixed.len() + document.len() * 2 + name.len() + 40);
        out.push_str(&self.fixed);
        form_urlencoded::Serializer::for_suffix(out, 0)
            .append_pair("api_paste_code", document)
            .append_pair("api_paste_name", name)
            .finish()
    }
}

/// Classifies a pastebin.com API answer. pastebin reports errors with status
/// 200 or 422 and a text body, so the body decides before the status does.
pub fn classify_pastebin(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    // Only an error needs the body in words.
    let short = || shorten(text);
    if status == 429 {
        return Verdict::OverQuota { retry_after, reason: format!("HTTP 429: {}", short()) };
    }
    if text.starts_with("Post limit") || (text.starts_with("Bad API request") && text.contains("maximum number of")) {
        return Verdict::OverQuota { retry_after, reason: short() };
    }
    if let Some(rest) = text.strip_prefix("Bad API request") {
        let refused = ["invalid api_dev_key", "invalid api_user_key", "invalid or expired api_user_key", "IP blocked"];
        return if refused.iter().any(|r| rest.contains(r)) {
            Verdict::Refused(short())
        } else {
            Verdict::Rejected(short())
        };
    }
    if status >= 500 || status == 408 {
        return Verdict::Transient(format!("HTTP {status}: {}", short()));
    }
    if (200..300).contains(&status) && is_absolute_url(text) {
        return Verdict::Published(text.to_owned());
    }
    Verdict::Transient(format!("HTTP {status}, not a URL: {}", short()))
}

/// Classifies the answer of a generic paste service (`upload`, `webhook`),
/// where the status code carries the meaning. `url` is the URL the sink found
/// in the answer (Location header, JSON Pointer or body), if any.
pub fn classify_http(status: u16, retry_after: Option<Duration>, url: Option<&str>, body: &[u8]) -> Verdict {
    // Only an error needs the body in words.
    let short = || format!("HTTP {status}: {}", shorten(String::from_utf8_lossy(body).trim()));
    match status {
        200..=299 => match url.map(str::trim).filter(|u| is_absolute_url(u)) {
            Some(u) => Verdict::Published(u.to_owned()),
            None => Verdict::Transient(format!("{} (no URL in the answer)", short())),
        },
        429 => Verdict::OverQuota { retry_after, reason: short() },
        408 | 500..=599 => Verdict::Transient(short()),
        // The service will not take anything from us: wrong credentials or URL.
        401 | 403 | 404 | 405 => Verdict::Refused(short()),
        // Anything else 4xx is about this document (too large, malformed).
        400..=499 => Verdict::Rejected(short()),
        _ => Verdict::Transient(short()),
    }
}

/// A 3xx answer, for every kind of sink; `None` for any other status.
/// Redirects are not followed: a 301 or 302 would turn the POST into a GET
/// without the document, and a paste service that redirects its API has
/// moved. So a redirect means `publisher.url` is not the endpoint: refused
/// (intake stops, every task is kept), with the `Location` to put there. The
/// one exception is a webhook's 303 See Other, whose `Location` is, by
/// definition, the resource the POST created: the paste's URL.
pub fn classify_redirect(webhook: bool, status: u16, location: Option<&str>) -> Option<Verdict> {
    if !(300..400).contains(&status) {
        return None;
    }
    let location = location.map(str::trim).filter(|l| !l.is_empty());
    Some(match location {
        Some(l) if webhook && status == 303 && is_absolute_url(l) => Verdict::Published(l.to_owned()),
        Some(l) => Verdict::Refused(format!(
            "HTTP {status}: publisher.url redirects to {}; redirects are not followed: set publisher.url to it",
            shorten(l)
        )),
        None => Verdict::Refused(format!("HTTP {status}: publisher.url redirects, with no Location")),
    })
}

/// The URL in a webhook's answer: the `Location` header, else the field the
/// JSON Pointer names in a JSON body, else the trimmed body. With
/// `pointer_first` (`publisher.url_from = "pointer"`) the pointer's field
/// comes before `Location` (GitHub's `Location` is the API's URL, the page is
/// in `html_url`).
pub fn webhook_url(location: Option<&str>, pointer: &str, pointer_first: bool, body: &[u8]) -> Option<String> {
    let from_pointer = || {
        if pointer.is_empty() {
            return None;
        }
        let v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
        match v.pointer(pointer)? {
            serde_json::Value::String(s) => Some(s.clone()),
            // A numeric key, for a URL template.
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    if pointer_first {
        if let Some(u) = from_pointer() {
            return Some(u);
        }
    }
    if let Some(l) = location {
        return Some(l.trim().to_owned());
    }
    if !pointer.is_empty() && serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        return from_pointer();
    }
    std::str::from_utf8(body).ok().map(|s| s.trim().to_owned())
}

/// An absolute http(s) URL with a host and no whitespace.
pub fn is_absolute_url(s: &str) -> bool {
    let rest = match s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) {
        Some(r) => r,
        None => return false,
    };
    !rest.is_empty()
        && !rest.starts_with('/')
        && s.len() <= 2048
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == '"')
}

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn shorten(s: &str) -> String {
    const MAX: usize = 160;
    let first_line = s.lines().next().unwrap_or("");
    if first_line.len() <= MAX && first_line.len() == s.len() {
        return s.to_owned();
    }
    let mut end = first_line.len().min(MAX);
    while !first_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &first_line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn redirects_are_refusals_but_a_webhooks_see_other_is_the_paste() {
        let cases: &[(bool, u16, Option<&str>, Option<Verdict>)] = &[
            (false, 200, Some("http://x/y"), None),
            (false, 404, None, None),
            (true, 201, Some("http://x/created"), None),
            (false, 301, Some("https://pastebin.com/api/api_post.php"), Some(Refused(
                "HTTP 301: publisher.url redirects to https://pastebin.com/api/api_post.php; redirects are not followed: set publisher.url to it".into(),
            ))),
            (true, 308, Some("https://h/new"), Some(Refused(
                "HTTP 308: publisher.url redirects to https://h/new; redirects are not followed: set publisher.url to it".into(),
            ))),
            (true, 303, Some(" https://h/p/1 "), Some(Published("https://h/p/1".into()))),
            (false, 303, Some("https://h/p/1"), Some(Refused(
                "HTTP 303: publisher.url redirects to https://h/p/1; redirects are not followed: set publisher.url to it".into(),
            ))),
            (true, 303, Some("/p/1"), Some(Refused(
                "HTTP 303: publisher.url redirects to /p/1; redirects are not followed: set publisher.url to it".into(),
            ))),
            (true, 302, None, Some(Refused("HTTP 302: publisher.url redirects, with no Location".into()))),
            (false, 307, Some("  "), Some(Refused("HTTP 307: publisher.url redirects, with no Location".into()))),
        ];
        for (webhook, status, location, want) in cases {
            assert_eq!(&classify_redirect(*webhook, *status, *location), want, "{webhook} {status} {location:?}");
        }
    }

    #[test]
    fn pastebin_form_holds_every_field_once_encoded() {
        let form = PastebinForm::new([("api_dev_key", "k&=y"), ("api_option", "paste")]);
        let body = form.body(r#"{"id":"a b","username":"ü+%"}"#, "id&1");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        let expected = [
            ("api_dev_key", "k&=y"),
            ("api_option", "paste"),
            ("api_paste_code", r#"{"id":"a b","username":"ü+%"}"#),
            ("api_paste_name", "id&1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(pairs, expected);
        assert_eq!(PastebinForm::new([]).body("d", "n"), "api_paste_code=d&api_paste_name=n");
    }

    fn kind(v: &Verdict) -> &'static str {
        match v {
            Published(_) => "published",
            Transient(_) => "transient",
            OverQuota { .. } => "quota",
            Refused(_) => "refused",
            Rejected(_) => "rejected",
        }
    }

    #[test]
    fn pastebin_answers() {
        // Bodies as pastebin.com sends them.
        let table: &[(u16, &str, &str)] = &[
            (200, "https://pastebin.com/UIFdu235s", "published"),
            (200, "https://pastebin.com/UIFdu235s\n", "published"),
            (201, "http://127.0.0.1:8080/abc", "published"),
            (200, "Bad API request, invalid api_dev_key", "refused"),
            (422, "Bad API request, invalid api_dev_key", "refused"),
            (200, "Bad API request, invalid api_user_key", "refused"),
            (200, "Bad API request, invalid or expired api_user_key", "refused"),
            (200, "Bad API request, IP blocked", "refused"),
            (422, "Post limit, maximum pastes per 24h reached", "quota"),
            (200, "Bad API request, maximum number of 25 unlisted pastes for your free account", "quota"),
            (200, "Bad API request, maximum number of 10 private pastes for your free account", "quota"),
            (429, "Too Many Requests", "quota"),
            (429, "", "quota"),
            (422, "Bad API request, maximum paste file size exceeded", "rejected"),
            (200, "Bad API request, api_paste_code was empty", "rejected"),
            (200, "Bad API request, invalid api_paste_format", "rejected"),
            (200, "Bad API request, invalid api_paste_private", "rejected"),
            (200, "Bad API request, invalid api_paste_expire_date", "rejected"),
            (200, "Bad API request, invalid api_option", "rejected"),
            (500, "Internal Server Error", "transient"),
            (502, "<html><body>Bad Gateway</body></html>", "transient"),
            (503, "", "transient"),
            (408, "", "transient"),
            (200, "<!DOCTYPE html><html><head><title>Pastebin.com - Down</title></head></html>", "transient"),
            (200, "", "transient"),
            (200, "pastebin.com/abc", "transient"),
            (200, "https://", "transient"),
            (200, "https:///path", "transient"),
            (200, "https://a b", "transient"),
            (404, "Not Found", "transient"),
            (301, "https://pastebin.com/moved", "transient"),
        ];
        for (status, body, want) in table {
            let got = classify_pastebin(*status, None, body.as_bytes());
            assert_eq!(kind(&got), *want, "{status} {body:?} gave {got:?}");
        }
        assert_eq!(
            classify_pastebin(200, None, b" https://pastebin.com/x1\r\n"),
            Published("https://pastebin.com/x1".into())
        );
    }

    #[test]
    fn quota_keeps_retry_after() {
        let v = classify_pastebin(429, Some(Duration::from_secs(7)), b"slow down");
        assert_eq!(v, OverQuota { retry_after: Some(Duration::from_secs(7)), reason: "HTTP 429: slow down".into() });
    }

    #[test]
    fn generic_http_answers() {
        let url = Some("https://paste.example/abc");
        let table: &[(u16, Option<&str>, &str)] = &[
            (200, url, "published"),
            (201, url, "published"),
            (200, None, "transient"),
            (200, Some("<html>"), "transient"),
            (429, None, "quota"),
            (408, None, "transient"),
            (500, None, "transient"),
            (503, url, "transient"),
            (401, None, "refused"),
            (403, None, "refused"),
            (404, None, "refused"),
            (400, None, "rejected"),
            (413, None, "rejected"),
            (422, None, "rejected"),
            (302, url, "transient"),
        ];
        for (status, url, want) in table {
            let got = classify_http(*status, None, *url, b"body");
            assert_eq!(kind(&got), *want, "{status} {url:?} gave {got:?}");
        }
    }

    #[test]
    fn webhook_urls() {
        let body = br#"{"data":{"url":"https://h/x"},"url":"https://h/top","key":"abc","n":42}"#;
        // (Location, pointer, pointer first, body) -> what the answer gives
        type Row<'a> = (Option<&'a str>, &'a str, bool, &'a [u8], Option<&'a str>);
        let table: &[Row<'_>] = &[
            (Some(" https://loc/1 "), "/url", false, body, Some("https://loc/1")),
            (Some("https://api/gists/1"), "/url", true, body, Some("https://h/top")),
            (Some("https://loc/1"), "/missing", true, body, Some("https://loc/1")),
            (None, "/data/url", false, body, Some("https://h/x")),
            (None, "/key", false, body, Some("abc")),
            (None, "/n", false, body, Some("42")),
            (None, "/missing", false, body, None),
            (None, "/url", false, b" https://h/not-json\n", Some("https://h/not-json")),
            (None, "", false, b" https://h/plain\n", Some("https://h/plain")),
        ];
        for (location, pointer, first, body, want) in table {
            assert_eq!(webhook_url(*location, pointer, *first, body).as_deref(), *want, "{location:?} {pointer}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:40:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn reasons_are_short() {
        let html = format!("<html>{}</html>", "x".repeat(10_000));
        let Transient(reason) = classify_pastebin(200, None, html.as_bytes()) else { panic!() };
        assert!(reason.len() < 250);
    }
}
