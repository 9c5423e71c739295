//! A task as producers send it, and the typed, normalised task the pipeline uses.
//!
//! Parsing is the only place raw producer input is looked at. Everything after
//! it works with [`Task`]: a validated id, an [`Ipv4Addr`] and a 48-bit [`Mac`].
//! A payload that cannot be parsed yields a [`TaskError`] whose text becomes the
//! `error` of its dead-letter entry.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

/// Payloads larger than this are rejected before JSON parsing.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Longest accepted task id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// A validated task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub ipv4: Ipv4Addr,
    pub mac: Mac,
}

impl Task {
    /// The ClickHouse key of the device: (ipv4 as a number, mac as a number).
    pub fn device_key(&self) -> (u32, u64) {
        (u32::from(self.ipv4), self.mac.as_u64())
    }
}

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(u64);

impl Mac {
    pub const MAX: u64 = (1 << 48) - 1;

    pub fn from_u64(value: u64) -> Option<Mac> {
        (value <= Self::MAX).then_some(Mac(value))
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// Canonical form: lower case, colon separated.
impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[2], b[3], b[4], b[5], b[6], b[7])
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff` and
/// `aabbccddeeff`, in any case. Separators may not be mixed.
impl FromStr for Mac {
    type Err = ();

    fn from_str(s: &str) -> Result<Mac, ()> {
        let b = s.as_bytes();
        // Positions of separators for each accepted spelling.
        let (sep, positions): (u8, &[usize]) = match b.len() {
            17 if b[2] == b':' => (b':', &[2, 5, 8, 11, 14]),
            17 if b[2] == b'-' => (b'-', &[2, 5, 8, 11, 14]),
            14 => (b'.', &[4, 9]),
            12 => (0, &[]),
            _ => return Err(()),
        };
        let mut value: u64 = 0;
        let mut digits = 0;
        for (i, &c) in b.iter().enumerate() {
            if positions.contains(&i) {
                if c != sep {
                    return Err(());
                }
                continue;
            }
            let d = (c as char).to_digit(16).ok_or(())?;
            value = (value << 4) | u64::from(d);
            digits += 1;
        }
        if digits != 12 {
            return Err(());
        }
        Ok(Mac(value))
    }
}

/// Why a payload is not a task. The text is what the dead-letter entry says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("payload is {0} bytes, more than the {MAX_PAYLOAD_BYTES} accepted")]
    TooLarge(usize),
    #[error("payload is not valid UTF-8")]
    NotUtf8,
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload is not a JSON object")]
    NotObject,
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `id` must be a non-empty string or an integer")]
    BadIdType,
    #[error("field `id` is empty")]
    EmptyId,
    #[error("field `id` is longer than {MAX_ID_BYTES} bytes")]
    IdTooLong,
    #[error("field `ipv4` must be a dotted-quad string such as 10.0.0.1, got {0}")]
    BadIpv4(String),
    #[error("field `mac` must be a MAC address such as aa:bb:cc:dd:ee:ff, got {0}")]
    BadMac(String),
}

/// Parses a list-mode payload: a JSON object with `id`, `ipv4` and `mac`.
///
/// The whole payload must be valid JSON; fields other than those three are
/// skipped without being built, and strings without escapes are read in
/// place (a `serde_json::Value` tree cost seven allocations per task).
pub fn parse_json(payload: &[u8]) -> Result<Task, TaskError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(TaskError::TooLarge(payload.len()));
    }
    let text = std::str::from_utf8(payload).map_err(|_| TaskError::NotUtf8)?;
    let top: raw::Top<'_> = serde_json::from_str(text).map_err(|e| TaskError::NotJson(e.to_string()))?;
    let raw::Top::Object { id, ipv4, mac } = top else {
        return Err(TaskError::NotObject);
    };
    let id = match id {
        None | Some(raw::Field::Null) => return Err(TaskError::Missing("id")),
        Some(raw::Field::Str(s)) => check_id(s.into_owned())?,
        Some(raw::Field::Int(n)) => n,
        Some(raw::Field::Other(_)) => return Err(TaskError::BadIdType),
    };
    let ipv4 = match ipv4 {
        None | Some(raw::Field::Null) => return Err(TaskError::Missing("ipv4")),
        Some(raw::Field::Str(s)) => parse_ipv4(&s)?,
        Some(other) => return Err(TaskError::BadIpv4(shorten(&other.to_json()))),
    };
    let mac = match mac {
        None | Some(raw::Field::Null) => return Err(TaskError::Missing("mac")),
        Some(raw::Field::Str(s)) => parse_mac(&s)?,
        Some(other) => return Err(TaskError::BadMac(shorten(&other.to_json()))),
    };
    Ok(Task { id, ipv4, mac })
}

/// The shapes `parse_json` reads a payload into.
mod raw {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
    use serde::de::{Deserialize, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    /// The payload's top level: an object's three fields that matter (of
    /// duplicates the last wins, as in any JSON object), or anything else.
    pub enum Top<'a> {
        Object { id: Option<Field<'a>>, ipv4: Option<Field<'a>>, mac: Option<Field<'a>> },
        NotObject,
    }

    /// A field's value as met: a string (borrowed when it has no escapes),
    /// an integer as its decimal text, or any other value, kept as JSON only
    /// to be named in an error.
    pub enum Field<'a> {
        Null,
        Str(Cow<'a, str>),
        Int(String),
        Other(Value),
    }

    impl Field<'_> {
        /// The value as JSON text, for an error message.
        pub fn to_json(&self) -> String {
            match self {
                Field::Null => "null".to_owned(),
                Field::Str(s) => Value::from(s.as_ref()).to_string(),
                Field::Int(n) => n.clone(),
                Field::Other(v) => v.to_string(),
            }
        }
    }

    enum Key {
        Id,
        Ipv4,
        Mac,
        Other,
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object key")
                }
                fn visit_str<E: Error>(self, s: &str) -> Result<Key, E> {
                    Ok(match s {
                        "id" => Key::Id,
                        "ipv4" => Key::Ipv4,
                        "mac" => Key::Mac,
                        _ => Key::Other,
                    })
                }
            }
            d.deserialize_identifier(V)
        }
    }

    impl<'de> Deserialize<'de> for Field<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Field<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_unit<E: Error>(self) -> Result<Field<'de>, E> {
                    Ok(Field::Null)
                }
                fn visit_borrowed_str<E: Error>(self, s: &'de str) -> Result<Field<'de>, E> {
                    Ok(Field::Str(Cow::Borrowed(s)))
                }
                fn visit_str<E: Error>(self, s: &str) -> Result<Field<'de>, E> {
                    Ok(Field::Str(Cow::Owned(s.to_owned())))
                }
                fn visit_u64<E: Error>(self, n: u64) -> Result<Field<'de>, E> {
                    Ok(Field::Int(n.to_string()))
                }
                fn visit_i64<E: Error>(self, n: i64) -> Result<Field<'de>, E> {
                    Ok(Field::Int(n.to_string()))
                }
                fn visit_f64<E: Error>(self, n: f64) -> Result<Field<'de>, E> {
                    Ok(Field::Other(Value::from(n)))
                }
                fn visit_bool<E: Error>(self, b: bool) -> Result<Field<'de>, E> {
                    Ok(Field::Other(Value::Bool(b)))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
                    Value::deserialize(SeqAccessDeserializer::new(seq)).map(Field::Other)
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
                    Value::deserialize(MapAccessDeserializer::new(map)).map(Field::Other)
                }
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for Top<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Top<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                    let (mut id, mut ipv4, mut mac) = (None, None, None);
                    while let Some(key) = map.next_key::<Key>()? {
                        match key {
                            Key::Id => id = Some(map.next_value()?),
                            Key::Ipv4 => ipv4 = Some(map.next_value()?),
                            Key::Mac => mac = Some(map.next_value()?),
                            Key::Other => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(Top::Object { id, ipv4, mac })
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Top::NotObject)
                }
                fn visit_unit<E: Error>(self) -> Result<Top<'de>, E> {
                    Ok(Top::NotObject)
                }
                fn visit_bool<E: Error>(self, _: bool) -> Result<Top<'de>, E> {
                    Ok(Top::NotObject)
                }
                fn visit_i64<E: Error>(self, _: i64) -> Result<Top<'de>, E> {
                    Ok(Top::NotObject)
                }
                fn visit_u64<E: Error>(self, _: u64) -> Result<Top<'de>, E> {
                    Ok(Top::NotObject)
                }
                fn visit_f64<E: Error>(self, _: f64) -> Result<Top<'de>, E> {
                    Ok(Top::NotObject)
                }
                fn visit_str<E: Error>(self, _: &str) -> Result<Top<'de>, E> {
                    Ok(Top::NotObject)
                }
            }
            d.deserialize_any(V)
        }
    }
}

/// Parses a stream-mode entry from its fields (name, value) as Redis returns them.
pub fn parse_fields<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Result<Task, TaskError> {
    let (mut id, mut ipv4, mut mac) = (None, None, None);
    let mut size = 0;
    for (name, value) in fields {
        size += name.len() + value.len();
        match name {
            b"id" => id = Some(value),
            b"ipv4" => ipv4 = Some(value),
            b"mac" => mac = Some(value),
            _ => {}
        }
    }
    if size > MAX_PAYLOAD_BYTES {
        return Err(TaskError::TooLarge(size));
    }
    let text = |v: &[u8]| std::str::from_utf8(v).map(str::to_owned).map_err(|_| TaskError::NotUtf8);
    let id = check_id(text(id.ok_or(TaskError::Missing("id"))?)?)?;
    let ipv4 = parse_ipv4(&text(ipv4.ok_or(TaskError::Missing("ipv4"))?)?)?;
    let mac = parse_mac(&text(mac.ok_or(TaskError::Missing("mac"))?)?)?;
    Ok(Task { id, ipv4, mac })
}

fn check_id(id: String) -> Result<String, TaskError> {
    if id.is_empty() {
        Err(TaskError::EmptyId)
    } else if id.len() > MAX_ID_BYTES {
        Err(TaskError::IdTooLong)
    } else {
        Ok(id)
    }
}

/// Strict dotted quad: four decimal parts 0..=255, no leading zeros, nothing else.
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, TaskError> {
    Ipv4Addr::from_str(s).map_err(|_| TaskError::BadIpv4(shorten(&format!("{s:?}"))))
}

pub fn parse_mac(s: &str) -> Result<Mac, TaskError> {
    Mac::from_str(s).map_err(|_| TaskError::BadMac(shorten(&format!("{s:?}"))))
}

/// Keeps error messages short when the offending value is huge.
fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The JSON document published for a found task.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub id: &'a str,
    pub ipv4: Ipv4Addr,
    pub mac: Mac,
    pub username: &'a str,
}

impl<'a> Document<'a> {
    pub fn new(task: &'a Task, username: &'a str) -> Self {
        Document { id: &task.id, ipv4: task.ipv4, mac: task.mac, username }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a document always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_spellings() {
        let want = Mac(0xaabb_ccdd_eeff);
        for s in [
            "aa:bb:cc:dd:ee:ff",
            "AA:BB:CC:DD:EE:FF",
            "aa-bb-cc-dd-ee-ff",
            "Aa-bB-cc-DD-ee-ff",
            "aabb.ccdd.eeff",
            "AABB.CCDD.EEFF",
            "aabbccddeeff",
            "AABBCCDDEEFF",
        ] {
            assert_eq!(s.parse::<Mac>(), Ok(want), "{s}");
        }
        assert_eq!(want.to_string(), "aa:bb:cc:dd:ee:ff");
        assert_eq!("00:00:00:00:00:01".parse::<Mac>().unwrap().to_string(), "00:00:00:00:00:01");
    }

    #[test]
    fn mac_rejects() {
        for s in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb-cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:fg",
            "aabb.ccdd-eeff",
            "aabbccddeef",
            "aabbccddeeffa",
            "aa.bb.cc.dd.ee.ff",
            " aa:bb:cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:f ",
            "+a:bb:cc:dd:ee:ff",
            "aabb:ccdd:eeff",
            "ааbbccddeeff", // Cyrillic a's: multi-byte
        ] {
            assert!(s.parse::<Mac>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn ipv4_accepts_and_rejects() {
        assert_eq!(parse_ipv4("10.0.0.1"), Ok(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(parse_ipv4("255.255.255.255"), Ok(Ipv4Addr::BROADCAST));
        assert_eq!(parse_ipv4("0.0.0.0"), Ok(Ipv4Addr::UNSPECIFIED));
        for s in [
            "999.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.-4",
            " 1.2.3.4",
            "1.2.3.4 ",
            "",
            "a.b.c.d",
            "256.0.0.1",
            "1..2.3",
        ] {
            assert!(parse_ipv4(s).is_err(), "{s:?} accepted");
        }
    }

    /// The straightforward parser `parse_json` replaced: the payload into a
    /// `serde_json::Value`, then the three fields out of it.
    fn parse_via_value(payload: &[u8]) -> Result<Task, TaskError> {
        use serde_json::Value;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(TaskError::TooLarge(payload.len()));
        }
        let text = std::str::from_utf8(payload).map_err(|_| TaskError::NotUtf8)?;
        let value: Value = serde_json::from_str(text).map_err(|e| TaskError::NotJson(e.to_string()))?;
        let Value::Object(map) = value else { return Err(TaskError::NotObject) };
        let id = match map.get("id") {
            None | Some(Value::Null) => return Err(TaskError::Missing("id")),
            Some(Value::String(s)) => check_id(s.clone())?,
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(_) => return Err(TaskError::BadIdType),
        };
        let ipv4 = match map.get("ipv4") {
            None | Some(Value::Null) => return Err(TaskError::Missing("ipv4")),
            Some(Value::String(s)) => parse_ipv4(s)?,
            Some(other) => return Err(TaskError::BadIpv4(shorten(&other.to_string()))),
        };
        let mac = match map.get("mac") {
            None | Some(Value::Null) => return Err(TaskError::Missing("mac")),
            Some(Value::String(s)) => parse_mac(s)?,
            Some(other) => return Err(TaskError::BadMac(shorten(&other.to_string()))),
        };
        Ok(Task { id, ipv4, mac })
    }

    #[test]
    fn parses_as_a_json_value_tree_would() {
        let ok = r#""ipv4":"1.2.3.4","mac":"aa:bb:cc:dd:ee:ff""#;
        let long = "y".repeat(200);
        let payloads = [
            format!("{{\"id\":\"a\",{ok}}}"),
            format!("{{\"id\":\"a\\u0062\\n\",{ok}}}"),
            format!("{{\"\\u0069d\":\"escaped key\",{ok}}}"),
            format!("{{\"id\":\"first\",\"id\":\"second\",{ok}}}"),
            format!("{{\"id\":\"x\",{ok},\"mac\":\"00:00:00:00:00:01\"}}"),
            format!("{{\"id\":\"x\",{ok},\"ipv4\":null}}"),
            format!("{{\"id\":18446744073709551615,{ok}}}"),
            format!("{{\"id\":18446744073709551616,{ok}}}"),
            format!("{{\"id\":-9223372036854775808,{ok}}}"),
            format!("{{\"id\":1e3,{ok}}}"),
            format!("{{\"id\":-0,{ok}}}"),
            format!("{{\"id\":[1,{{\"a\":[]}}],{ok}}}"),
            format!("{{\"id\":\"a\",\"skip\":{{\"deep\":[1,2,{{\"x\":null}}]}},{ok}}}"),
            format!("{{\"id\":\"a\",\"ipv4\":[\"{long}\"],\"mac\":1}}"),
            format!("{{\"id\":\"a\",\"ipv4\":\"1.2.3.4\",\"mac\":{{\"k\":\"{long}\"}}}}"),
            r#"{"id":"a","ipv4":1.25,"mac":true}"#.to_owned(),
            r#"{"id":"a","ipv4":"1.2.3.4","mac":"\u00e9"}"#.to_owned(),
            format!("  {{\"id\":\"a\",{ok}}}  "),
            format!("{{\"id\":\"a\",{ok}}} x"),
            format!("{{\"id\":\"a\",{ok},}}"),
            "[{\"id\":\"a\"}]".to_owned(),
            "null".to_owned(),
            "12".to_owned(),
            "{}".to_owned(),
            "{\"id\":".to_owned(),
            String::new(),
            format!("{{\"id\":{}{},{ok}}}", "[".repeat(200), "]".repeat(200)),
        ];
        for p in &payloads {
            assert_eq!(parse_json(p.as_bytes()), parse_via_value(p.as_bytes()), "{p}");
        }
        // One difference, on purpose: a value that is skipped is never built,
        // so nesting deeper than serde_json's 128 levels no longer fails the
        // payload (the skipping is iterative; 64 KiB of brackets is safe).
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        assert!(matches!(parse_via_value(deep.as_bytes()), Err(TaskError::NotJson(_))));
        assert_eq!(parse_json(deep.as_bytes()), Err(TaskError::NotObject));
        let deep_extra = format!("{{\"id\":\"a\",\"n\":{deep},{ok}}}");
        assert!(matches!(parse_via_value(deep_extra.as_bytes()), Err(TaskError::NotJson(_))));
        assert_eq!(parse_json(deep_extra.as_bytes()).map(|t| t.id), Ok("a".to_owned()));
    }

    fn err(payload: &str) -> TaskError {
        parse_json(payload.as_bytes()).unwrap_err()
    }

    #[test]
    fn json_tasks() {
        let t = parse_json(br#"{"id":"a1","ipv4":"10.0.0.1","mac":"AABB.CCDD.EEFF","extra":[1]}"#).unwrap();
        assert_eq!(t, Task { id: "a1".into(), ipv4: Ipv4Addr::new(10, 0, 0, 1), mac: Mac(0xaabbccddeeff) });
        let t = parse_json(br#"{"id":42,"ipv4":"1.2.3.4","mac":"aabbccddeeff"}"#).unwrap();
        assert_eq!(t.id, "42");
        let t = parse_json(br#"{"id":-7,"ipv4":"1.2.3.4","mac":"aabbccddeeff"}"#).unwrap();
        assert_eq!(t.id, "-7");
    }

    #[test]
    fn json_rejects_with_reasons() {
        let ok_rest = r#""ipv4":"1.2.3.4","mac":"aa:bb:cc:dd:ee:ff""#;
        assert!(matches!(err("nope"), TaskError::NotJson(_)));
        assert!(matches!(err("{\"id\":"), TaskError::NotJson(_)));
        assert_eq!(err("[1,2]"), TaskError::NotObject);
        assert_eq!(err("\"str\""), TaskError::NotObject);
        assert_eq!(err(&format!("{{{ok_rest}}}")), TaskError::Missing("id"));
        assert_eq!(err(&format!("{{\"id\":null,{ok_rest}}}")), TaskError::Missing("id"));
        assert_eq!(err(&format!("{{\"id\":\"\",{ok_rest}}}")), TaskError::EmptyId);
        assert_eq!(err(&format!("{{\"id\":1.5,{ok_rest}}}")), TaskError::BadIdType);
        assert_eq!(err(&format!("{{\"id\":true,{ok_rest}}}")), TaskError::BadIdType);
        assert_eq!(err(&format!("{{\"id\":{{}},{ok_rest}}}")), TaskError::BadIdType);
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(err(&format!("{{\"id\":\"{long}\",{ok_rest}}}")), TaskError::IdTooLong);
        assert!(matches!(err(r#"{"id":"1","ipv4":167772161,"mac":"aabbccddeeff"}"#), TaskError::BadIpv4(_)));
        assert!(matches!(err(r#"{"id":"1","ipv4":"999.1.1.1","mac":"aabbccddeeff"}"#), TaskError::BadIpv4(_)));
        assert!(matches!(err(r#"{"id":"1","ipv4":"1.2.3","mac":"aabbccddeeff"}"#), TaskError::BadIpv4(_)));
        assert!(matches!(err(r#"{"id":"1","ipv4":"1.2.3.4","mac":"aabbccddee"}"#), TaskError::BadMac(_)));
        assert!(matches!(err(r#"{"id":"1","ipv4":"1.2.3.4","mac":12}"#), TaskError::BadMac(_)));
        assert_eq!(err(r#"{"id":"1","mac":"aabbccddeeff"}"#), TaskError::Missing("ipv4"));
        assert_eq!(err(r#"{"id":"1","ipv4":"1.2.3.4"}"#), TaskError::Missing("mac"));
        assert_eq!(parse_json(b"{\"id\":\"\xff\"}").unwrap_err(), TaskError::NotUtf8);
        let huge = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(parse_json(&huge).unwrap_err(), TaskError::TooLarge(MAX_PAYLOAD_BYTES + 1));
    }

    #[test]
    fn error_text_stays_short() {
        let big = format!(r#"{{"id":"1","ipv4":"{}","mac":"aabbccddeeff"}}"#, "9".repeat(10_000));
        let text = parse_json(big.as_bytes()).unwrap_err().to_string();
        assert!(text.len() < 200, "{text}");
    }

    #[test]
    fn stream_fields() {
        let f: Vec<(&[u8], &[u8])> =
            vec![(b"id", b"7"), (b"ipv4", b"10.0.0.2"), (b"mac", b"aa-bb-cc-dd-ee-ff"), (b"x", b"y")];
        let t = parse_fields(f).unwrap();
        assert_eq!(t.id, "7");
        assert_eq!(t.mac.to_string(), "aa:bb:cc:dd:ee:ff");
        let f: Vec<(&[u8], &[u8])> = vec![(b"ipv4", b"10.0.0.2"), (b"mac", b"aa-bb-cc-dd-ee-ff")];
        assert_eq!(parse_fields(f).unwrap_err(), TaskError::Missing("id"));
    }

    #[test]
    fn document_json() {
        let t = parse_json(br#"{"id":"a1","ipv4":"10.0.0.1","mac":"AA-BB-CC-DD-EE-FF"}"#).unwrap();
        assert_eq!(
            Document::new(&t, "anna").to_json(),
            r#"{"id":"a1","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff","username":"anna"}"#
        );
    }
}
