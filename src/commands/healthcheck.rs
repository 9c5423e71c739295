//! `healthcheck`: one HTTP GET with the standard library, for images that
//! have no curl or shell (the Dockerfile's HEALTHCHECK).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::cli::CommandError;

pub fn probe(url: &str) -> Result<(), CommandError> {
    match get(url, Duration::from_secs(2))? {
        (code, _) if (200..300).contains(&code) => Ok(()),
        (0, _) => Err(CommandError::Failed(format!("{url} answered no HTTP status"))),
        (code, _) => Err(CommandError::Failed(format!("{url} answered {code}"))),
    }
}

/// One `GET` of an `http://` URL: the status (0 when the answer had none)
/// and the body (up to 64 KiB).
pub fn get(url: &str, timeout: Duration) -> Result<(u16, String), CommandError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| CommandError::Usage(format!("expected an http:// URL, got {url:?}")))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr =
        host.to_socket_addrs()?.next().ok_or_else(|| CommandError::Failed(format!("{host} does not resolve")))?;
    let mut conn = TcpStream::connect_timeout(&addr, timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    conn.take(64 * 1024).read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, body.to_owned()))
}
