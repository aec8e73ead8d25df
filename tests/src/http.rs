//! A real HTTP endpoint for the SMS tests: a listener on 127.0.0.1 that
//! records every request (method, path, headers, body) and answers each
//! with the next scripted reply (201 `{}` once the script is used up), or
//! — started silent — takes each connection and never answers. Requests
//! can also be written to a file, one JSON line each, for programs outside
//! the test process (an `expect` script) to read.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, …
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as sent.
    pub body: String,
}

impl Recorded {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body's form fields, decoded (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Vec<(String, String)> {
        self.body
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    /// The form field `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A scripted reply: status, JSON body and extra headers.
pub type Reply = (u16, String, Vec<(String, String)>);

#[derive(Debug, Default)]
struct Shared {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    /// Connections taken so far.
    connections: usize,
    /// Never answer; the connections are held here.
    silent: bool,
    held: Vec<TcpStream>,
    /// Where each request is appended as a JSON line.
    log: Option<std::path::PathBuf>,
}

/// The endpoint; it serves until the test process ends.
#[derive(Debug, Clone)]
pub struct HttpRecorder {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl HttpRecorder {
    /// Starts listening on a free port of 127.0.0.1.
    pub fn start() -> HttpRecorder {
        HttpRecorder::start_with(Shared::default())
    }

    /// An endpoint that accepts each connection, reads the request and
    /// never answers (nor closes).
    pub fn start_silent() -> HttpRecorder {
        HttpRecorder::start_with(Shared {
            silent: true,
            ..Shared::default()
        })
    }

    /// An endpoint that also appends each request to `path` as a JSON
    /// line (`method`, `path`, `body`).
    pub fn start_logging(path: &std::path::Path) -> HttpRecorder {
        HttpRecorder::start_with(Shared {
            log: Some(path.to_owned()),
            ..Shared::default()
        })
    }

    fn start_with(shared: Shared) -> HttpRecorder {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the HTTP recorder");
        let port = l.local_addr().expect("its address").port();
        let shared = Arc::new(Mutex::new(shared));
        let s2 = shared.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let s3 = s2.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s3);
                });
            }
        });
        HttpRecorder { port, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers the next request with `status` and `body`.
    pub fn reply_next(&self, status: u16, body: &str) {
        self.reply_next_with(status, body, &[]);
    }

    /// Answers the next request with `status`, `body` and `headers`
    /// (e.g. `Retry-After`).
    pub fn reply_next_with(&self, status: u16, body: &str, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        self.shared
            .lock()
            .unwrap()
            .script
            .push_back((status, body.to_owned(), headers));
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().unwrap().connections
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Waits until `n` requests have come (or `within` passed).
    pub fn wait_requests(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let end = Instant::now() + within;
        loop {
            let r = self.requests();
            if r.len() >= n || Instant::now() >= end {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(conn: TcpStream, shared: &Mutex<Shared>) -> std::io::Result<()> {
    shared.lock().unwrap().connections += 1;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let (status, reply, extra) = {
        let mut s = shared.lock().unwrap();
        let rec = Recorded {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        if let Some(log) = &s.log {
            let line = serde_json::json!({
                "method": rec.method,
                "path": rec.path,
                "body": rec.body,
            });
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            writeln!(f, "{line}")?;
        }
        s.requests.push(rec);
        if s.silent {
            s.held.push(conn);
            return Ok(());
        }
        s.script
            .pop_front()
            .unwrap_or((201, "{}".into(), Vec::new()))
    };
    let mut w = conn;
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.len()
    );
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    write!(w, "{head}\r\n{reply}")?;
    w.flush()
}
