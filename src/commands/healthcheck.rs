//! `healthcheck`: one HTTP GET with the standard library, for images that
//! have no curl or shell (the Dockerfile's HEALTHCHECK).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::cli::CommandError;

pub fn probe(url: &str) -> Result<(), CommandError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| CommandError::Usage(format!("--url must be an http:// URL, got {url:?}")))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr =
        host.to_socket_addrs()?.next().ok_or_else(|| CommandError::Failed(format!("{host} does not resolve")))?;
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = conn.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    match line.split(' ').nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        Some(code) => Err(CommandError::Failed(format!("{url} answered {code}"))),
        None => Err(CommandError::Failed(format!("{url} answered no HTTP status"))),
    }
}
