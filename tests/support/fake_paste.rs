//! A paste server that misbehaves on purpose: each request's answer is
//! decided by a function of the request, which a test can change at run time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Create the paste; answer its URL with 200.
    Create,
    /// Answer this status and body, with an optional Retry-After (seconds).
    Reply { status: u16, body: String, retry_after: Option<u64> },
    /// Read the request, then say nothing for this long and close.
    Hang(Duration),
    /// Wait, then create.
    Slow(Duration),
    /// Read the request, then reset the connection (RST, no answer).
    Reset,
    /// Anything: status, extra headers, body; `created` counts it as a paste.
    Raw { status: u16, headers: Vec<(String, String)>, body: String, created: bool },
}

pub fn reply(status: u16, body: &str) -> Answer {
    Answer::Reply { status, body: body.to_owned(), retry_after: None }
}

pub type Form = HashMap<String, String>;
type Decide = Box<dyn Fn(&Form, usize) -> Answer + Send>;

#[derive(Debug, Clone)]
pub struct Request {
    pub form: Form,
    pub at: Instant,
    pub created: bool,
}

pub struct FakePaste {
    pub base: String,
    decide: Arc<Mutex<Decide>>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl FakePaste {
    pub fn start(decide: impl Fn(&Form, usize) -> Answer + Send + 'static) -> FakePaste {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let decide: Arc<Mutex<Decide>> = Arc::new(Mutex::new(Box::new(decide)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, r, s, b) = (decide.clone(), requests.clone(), stop.clone(), base.clone());
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (d, r, s, b) = (d.clone(), r.clone(), s.clone(), b.clone());
                        std::thread::spawn(move || serve(conn, &d, &r, &s, &b));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakePaste { base, decide, requests, stop }
    }

    pub fn api_url(&self) -> String {
        format!("{}/api/api_post.php", self.base)
    }

    /// Changes how requests are answered from now on.
    pub fn set(&self, decide: impl Fn(&Form, usize) -> Answer + Send + 'static) {
        *self.decide.lock().unwrap() = Box::new(decide);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Task ids of the pastes created, one entry per paste.
    pub fn created_ids(&self) -> Vec<String> {
        self.requests().into_iter().filter(|r| r.created).map(|r| r.form["api_paste_name"].clone()).collect()
    }
}

impl Drop for FakePaste {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: TcpStream, decide: &Mutex<Decide>, requests: &Mutex<Vec<Request>>, stop: &AtomicBool, base: &str) {
    conn.set_nonblocking(false).unwrap();
    conn.set_nodelay(true).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut length = 0usize;
        let mut content_type = String::new();
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if k.eq_ignore_ascii_case("content-type") {
                    content_type = v.trim().to_owned();
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        // A form is parsed; any other body is given as `_body`, with `_content_type`.
        let form = if content_type.starts_with("application/x-www-form-urlencoded") {
            parse_form(&String::from_utf8_lossy(&body))
        } else {
            [
                ("_body".to_owned(), String::from_utf8_lossy(&body).into_owned()),
                ("_content_type".to_owned(), content_type.clone()),
            ]
            .into_iter()
            .collect()
        };
        let (answer, n) = {
            let mut reqs = requests.lock().unwrap();
            let n = reqs.len();
            reqs.push(Request { form: form.clone(), at: Instant::now(), created: false });
            (decide.lock().unwrap()(&form, n), n)
        };
        let mut extra_headers = Vec::new();
        let (status, text, retry_after) = match answer {
            Answer::Create => (200, String::new(), None),
            Answer::Slow(d) => {
                std::thread::sleep(d);
                (200, String::new(), None)
            }
            Answer::Raw { status, headers, body, created } => {
                requests.lock().unwrap()[n].created = created;
                extra_headers = headers;
                (status, body, None)
            }
            Answer::Hang(d) => {
                let until = Instant::now() + d;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return;
            }
            Answer::Reply { status, body, retry_after } => (status, body, retry_after),
            Answer::Reset => {
                // SO_LINGER 0: close sends RST instead of FIN.
                let linger = libc::linger { l_onoff: 1, l_linger: 0 };
                // SAFETY: a plain setsockopt on a socket this function owns.
                unsafe {
                    libc::setsockopt(
                        std::os::fd::AsRawFd::as_raw_fd(&conn),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&linger as *const libc::linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
                return;
            }
        };
        let text = if text.is_empty() && status == 200 && !requests.lock().unwrap()[n].created {
            requests.lock().unwrap()[n].created = true;
            format!("{base}/p{n}")
        } else {
            text
        };
        let mut extra = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
        for (k, v) in extra_headers {
            extra.push_str(&format!("{k}: {v}\r\n"));
        }
        let head =
            format!("HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}\r\n", text.len());
        // One write: a head and body in two segments would wait for a delayed ACK.
        if conn.write_all(format!("{head}{text}").as_bytes()).is_err() {
            return;
        }
    }
}

fn parse_form(body: &str) -> Form {
    body.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
