//! The webhook sink's request body and result URL, shaped by configuration:
//! `publisher.body` ([`BodyTemplate`]) and `publisher.url_template`
//! ([`UrlTemplate`]). Both are parsed once, at start, where a bad one is a
//! configuration error naming its key; expanding them per paste only joins
//! strings.

use std::fmt;

/// What a placeholder of the body stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `{{document}}`: the document as a JSON string (quoted, escaped).
    Document,
    /// `{{document_object}}`: the document itself, a JSON object.
    DocumentObject,
    /// `{{id}}`: the task id as a JSON string.
    Id,
}

/// A parsed `publisher.body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate {
    parts: Vec<Part>,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A document such as the publisher sends, for checking a template at start:
/// quotes, a backslash and non-ASCII included.
const SAMPLE_DOCUMENT: &str =
    r#"{"id":"sample \"1\"\\","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff","username":"Zoë \u0001"}"#;

impl BodyTemplate {
    /// Parses a template and checks that, filled with a sample document, it
    /// gives one valid JSON value.
    pub fn parse(text: &str) -> Result<BodyTemplate, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let end = rest[start..]
                .find("}}")
                .map(|e| start + e)
                .ok_or_else(|| TemplateError(format!("an unclosed {{{{ at {:?}", shorten(&rest[start..]))))?;
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            parts.push(match rest[start + 2..end].trim() {
                "document" => Part::Document,
                "document_object" => Part::DocumentObject,
                "id" => Part::Id,
                other => {
                    return Err(TemplateError(format!(
                        "unknown placeholder {{{{{other}}}}}: expected {{{{document}}}}, {{{{document_object}}}} or {{{{id}}}}"
                    )))
                }
            });
            rest = &rest[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let template = BodyTemplate { parts };
        let sample = template.expand(SAMPLE_DOCUMENT, "sample \"1\"\\");
        serde_json::from_str::<serde_json::Value>(&sample).map_err(|e| {
            TemplateError(format!("with a sample document it is not valid JSON ({e}): {}", shorten(&sample)))
        })?;
        Ok(template)
    }

    /// The body for one paste: `document` is the document's JSON text.
    pub fn expand(&self, document: &str, id: &str) -> String {
        let mut out = String::with_capacity(document.len() * 2 + 64);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Document => push_json_string(&mut out, document),
                Part::DocumentObject => out.push_str(document),
                Part::Id => push_json_string(&mut out, id),
            }
        }
        out
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string always serialises"));
}

/// A parsed `publisher.url_template`: `{value}` stands for what the answer
/// gave (a key, a path), the rest is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    before: String,
    after: String,
}

impl UrlTemplate {
    pub fn parse(text: &str) -> Result<UrlTemplate, TemplateError> {
        let (before, after) =
            text.split_once("{value}").ok_or_else(|| TemplateError("has no {value} to put the answer in".into()))?;
        if after.contains("{value}") {
            return Err(TemplateError("has {value} more than once".into()));
        }
        let template = UrlTemplate { before: before.to_owned(), after: after.to_owned() };
        if !crate::sink::verdict::is_absolute_url(&template.expand("abc")) {
            return Err(TemplateError(format!("{text:?} does not make an absolute http(s) URL")));
        }
        Ok(template)
    }

    /// The URL for what the answer gave, trimmed of whitespace and of
    /// slashes at either end. Whether the result is a URL at all is the
    /// classifier's to judge.
    pub fn expand(&self, value: &str) -> String {
        format!("{}{}{}", self.before, value.trim().trim_matches('/'), self.after)
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(120).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, username: &str) -> String {
        serde_json::json!({"id": id, "ipv4": "10.0.0.1", "mac": "aa:bb:cc:dd:ee:ff", "username": username}).to_string()
    }

    #[test]
    fn placeholders_expand_to_valid_json_whatever_the_values() {
        let pinnwand =
            BodyTemplate::parse(r#"{"expiry": "1day", "files": [{"lexer": "json", "content": {{document}}}]}"#)
                .unwrap();
        let gist =
            BodyTemplate::parse(r#"{"public": false, "files": {"device.json": {"content": {{ document }}}}}"#).unwrap();
        let wrapped = BodyTemplate::parse(r#"{"task": {{id}}, "result": {{document_object}}}"#).unwrap();
        // (id, username): quotes, backslashes, control characters, non-ASCII.
        let values = [
            ("plain-1", "alice"),
            ("q\"uote", "back\\slash"),
            ("tab\there", "new\nline \u{0007}"),
            ("ünïcödé-ид", "用户 😀"),
            ("</script>", "{{document}}"),
        ];
        for (id, user) in values {
            let d = doc(id, user);
            let v: serde_json::Value = serde_json::from_str(&pinnwand.expand(&d, id)).unwrap();
            let inner: serde_json::Value = serde_json::from_str(v["files"][0]["content"].as_str().unwrap()).unwrap();
            assert_eq!((inner["id"].as_str(), inner["username"].as_str()), (Some(id), Some(user)));
            let v: serde_json::Value = serde_json::from_str(&gist.expand(&d, id)).unwrap();
            assert_eq!(v["files"]["device.json"]["content"].as_str(), Some(d.as_str()));
            let v: serde_json::Value = serde_json::from_str(&wrapped.expand(&d, id)).unwrap();
            assert_eq!((v["task"].as_str(), v["result"]["username"].as_str()), (Some(id), Some(user)));
        }
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let table = [
            (r#"{"content": {{document}}"#, "not valid JSON"),
            (r#"{"content": "{{document}}"}"#, "not valid JSON"),
            (r#"{"content": {{doc}}}"#, "unknown placeholder {{doc}}"),
            (r#"{"content": {{document"#, "unclosed"),
            ("", "not valid JSON"),
        ];
        for (text, want) in table {
            let err = BodyTemplate::parse(text).unwrap_err();
            assert!(err.0.contains(want), "{text:?}: {err}");
        }
        // Text without placeholders is a fixed body, which is valid JSON.
        assert!(BodyTemplate::parse(r#"{"ping": true}"#).is_ok());
    }

    #[test]
    fn url_templates() {
        let t = UrlTemplate::parse("https://paste.example/{value}").unwrap();
        assert_eq!(t.expand("abc123"), "https://paste.example/abc123");
        assert_eq!(t.expand(" /abc123\n"), "https://paste.example/abc123");
        let t = UrlTemplate::parse("https://paste.example/raw/{value}.json").unwrap();
        assert_eq!(t.expand("k"), "https://paste.example/raw/k.json");
        for (text, want) in [
            ("https://paste.example/", "no {value}"),
            ("https://x/{value}/{value}", "more than once"),
            ("paste.example/{value}", "absolute"),
            ("{value}", "absolute"),
        ] {
            let err = UrlTemplate::parse(text).unwrap_err();
            assert!(err.0.contains(want), "{text:?}: {err}");
        }
    }
}
