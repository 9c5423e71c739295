//! A multipart/form-data body with one file part: how the upload sink sends a
//! document, and how lookups send their keys to ClickHouse as external data.

/// Returns (content type with its boundary, body).
pub fn one_file(field: &str, filename: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("device-lookup-{:016x}", rand::random::<u64>());
    let safe = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect::<String>()
    };
    let mut body = Vec::with_capacity(data.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n",
            safe(field),
            safe(filename)
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_body() {
        let (ct, body) = one_file("file", "id \"1\".json", "application/json", b"{\"a\":1}");
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"file\"; filename=\"id__1_.json\"\r\nContent-Type: application/json"), "{text}");
        assert!(text.contains("\r\n\r\n{\"a\":1}\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}
