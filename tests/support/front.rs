//! A TCP front before an HTTP server that forwards everything but the
//! requests a test picks: those it drops (reads the head, closes the
//! connection) while it is set to fail. It looks only at the first request
//! of each connection, which is enough for clients that open a connection
//! per request once their connections start to fail.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Front {
    pub port: u16,
    failing: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    matched: Arc<AtomicUsize>,
}

impl Front {
    /// Forwards to `127.0.0.1:upstream`; a request whose first line contains
    /// `pattern` is dropped while failing.
    pub fn start(upstream: u16, pattern: &'static str) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let failing = Arc::new(AtomicBool::new(true));
        let dropped = Arc::new(AtomicUsize::new(0));
        let matched = Arc::new(AtomicUsize::new(0));
        let (f, d, m) = (failing.clone(), dropped.clone(), matched.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (f, d, m) = (f.clone(), d.clone(), m.clone());
                std::thread::spawn(move || serve(conn, upstream, pattern, &f, &d, &m));
            }
        });
        Front { port, failing, dropped, matched }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn heal(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    /// Requests dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Requests that matched the pattern, dropped or forwarded.
    pub fn matched(&self) -> usize {
        self.matched.load(Ordering::SeqCst)
    }
}

fn serve(
    mut conn: TcpStream,
    upstream: u16,
    pattern: &str,
    failing: &AtomicBool,
    dropped: &AtomicUsize,
    matched: &AtomicUsize,
) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The request line (and whatever came with it in the first reads).
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    while !head.windows(2).any(|w| w == b"\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line_end = head.windows(2).position(|w| w == b"\r\n").unwrap();
    if String::from_utf8_lossy(&head[..line_end]).contains(pattern) {
        matched.fetch_add(1, Ordering::SeqCst);
        if failing.load(Ordering::SeqCst) {
            dropped.fetch_add(1, Ordering::SeqCst);
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
    if up.write_all(&head).is_err() {
        return;
    }
    let (mut up_read, mut conn_write) = (up.try_clone().unwrap(), conn.try_clone().unwrap());
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut conn_write);
        let _ = conn_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut conn, &mut up);
    let _ = up.shutdown(Shutdown::Write);
    let _ = back.join();
}
