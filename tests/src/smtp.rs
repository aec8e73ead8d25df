//! A real SMTP server for the email tests: `tests/smtp/recorder.py`
//! (Python's aiosmtpd, Debian `python3-aiosmtpd`) on 127.0.0.1, plain,
//! STARTTLS (+ AUTH) or implicit TLS with certificates from a CA the test
//! makes with `openssl`, or a server that accepts and never greets. It
//! records every command and every message.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The interpreter that has aiosmtpd (Debian's, whatever `python3` is first on PATH).
pub const PYTHON: &str = "/usr/bin/python3";

/// How the server talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No TLS offered.
    Plain,
    /// STARTTLS offered and required.
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// Accepts connections and never says a word.
    Silent,
    /// No TLS; every recipient refused with a 550 quoting the address.
    Reject,
}

/// A CA and a leaf certificate for 127.0.0.1 it signed.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate (PEM): what `[email] ca_file` names.
    pub ca: PathBuf,
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// The server's key (PEM).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA named `name` in `dir` and a leaf for 127.0.0.1 signed by it.
pub fn make_ca(dir: &Path, name: &str) -> TestCa {
    crate::require_programs(&["openssl"]);
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("ca dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj"]);
    let subj = format!("/CN={name} test CA");
    a.push(&subj);
    a.extend([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&d, &a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&d, &a);
    std::fs::write(
        d.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
    TestCa {
        ca: d.join("ca.pem"),
        cert: d.join("leaf.pem"),
        key: d.join("leaf.key"),
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// Headers and body as received.
    pub data: String,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The AUTH user, if any.
    pub auth: Option<String>,
}

impl Mail {
    /// The first run of exactly 6 digits in the body: the code.
    pub fn code(&self) -> Option<String> {
        self.body()
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    }

    /// The body, quoted-printable decoded, lines joined with `\n`.
    pub fn body(&self) -> String {
        let raw = self
            .data
            .split("\r\n\r\n")
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n\n");
        let joined = raw.replace("=\r\n", "").replace("\r\n", "\n");
        let mut out = Vec::new();
        let b = joined.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if b[i] == b'=' && i + 2 < b.len() {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// The running recorder; killed when dropped.
#[derive(Debug)]
pub struct SmtpServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    out: PathBuf,
}

impl SmtpServer {
    /// Starts a recorder in `mode` (TLS modes need `ca`), requiring AUTH
    /// with `auth` when given; it records into `dir`.
    pub fn start(
        dir: &Path,
        mode: Mode,
        ca: Option<&TestCa>,
        auth: Option<(&str, &str)>,
    ) -> SmtpServer {
        SmtpServer::start_on(dir, free_port(), mode, ca, auth)
    }

    /// Like [`SmtpServer::start`], on `port`.
    pub fn start_on(
        dir: &Path,
        port: u16,
        mode: Mode,
        ca: Option<&TestCa>,
        auth: Option<(&str, &str)>,
    ) -> SmtpServer {
        require();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/recorder.py");
        let out = dir.join(format!("smtp-{port}.jsonl"));
        let mut cmd = Command::new(PYTHON);
        cmd.arg(&script).arg(port.to_string()).arg(&out);
        cmd.arg(match mode {
            Mode::Plain => "plain",
            Mode::Starttls => "starttls",
            Mode::Tls => "tls",
            Mode::Silent => "silent",
            Mode::Reject => "reject",
        });
        if matches!(mode, Mode::Starttls | Mode::Tls) {
            let ca = ca.expect("a TLS mode needs certificates");
            cmd.arg(&ca.cert).arg(&ca.key);
        }
        if let Some((u, p)) = auth {
            cmd.arg(format!("{u}:{p}"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP recorder");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read READY");
        assert_eq!(line.trim(), "READY", "the SMTP recorder did not start");
        SmtpServer { child, port, out }
    }

    /// Every message so far.
    pub fn mails(&self) -> Vec<Mail> {
        read_mails(&self.out)
    }

    /// The messages a recorder on `port` wrote into `dir` (for a thread
    /// that does not hold the server).
    pub fn mails_in(dir: &Path, port: u16) -> Vec<Mail> {
        read_mails(&dir.join(format!("smtp-{port}.jsonl")))
    }

    /// Waits until at least `n` messages arrived (or `limit` passed).
    pub fn wait_mails(&self, n: usize, limit: Duration) -> Vec<Mail> {
        let end = Instant::now() + limit;
        loop {
            let m = self.mails();
            if m.len() >= n || Instant::now() >= end {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The code mails so far (Subject `Your verification code`), oldest first.
    pub fn code_mails(&self) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.header("Subject").as_deref() == Some("Your verification code"))
            .collect()
    }

    /// The code of the `n`-th code mail (1-based), waiting for it up to 10 s.
    pub fn nth_code(&self, n: usize) -> Option<String> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.code_mails();
            if m.len() >= n {
                return m[n - 1].code();
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a message satisfies `pred` (or `limit` passed).
    pub fn wait_for(&self, pred: impl Fn(&Mail) -> bool, limit: Duration) -> Option<Mail> {
        let end = Instant::now() + limit;
        loop {
            if let Some(m) = self.mails().into_iter().find(|m| pred(m)) {
                return Some(m);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every command received so far (`EHLO`, `STARTTLS`, `AUTH PLAIN`,
    /// `AUTH-RESULT ok`, `MAIL`, `RCPT`, `DATA`, `QUIT`; `CONNECT` for a
    /// silent server).
    pub fn commands(&self) -> Vec<String> {
        let mut p = self.out.clone().into_os_string();
        p.push(".commands");
        std::fs::read_to_string(PathBuf::from(p))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails (never skips) unless Python's aiosmtpd is installed.
#[track_caller]
pub fn require() {
    crate::require_programs(&[PYTHON]);
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs Python's aiosmtpd (Debian python3-aiosmtpd): run scripts/deps"
    );
}

fn read_mails(out: &Path) -> Vec<Mail> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("recorded json");
            Mail {
                from: v["from"].as_str().unwrap_or_default().to_owned(),
                to: v["to"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                data: v["data"].as_str().unwrap_or_default().to_owned(),
                tls: v["tls"].as_bool().unwrap_or(false),
                auth: v["auth"].as_str().map(str::to_owned),
            }
        })
        .collect()
}
