//! `twofold-vkey`: a virtual FIDO2 security key for the QEMU guest test
//! (guest/qemu). It makes a HID device on /dev/uhid with the FIDO report
//! descriptor, speaks CTAPHID on it, and answers CTAP2 with the daemon's
//! software authenticator, so twofoldd's real backend (ctap-hid-fido2,
//! hidapi on hidraw) talks to it as to a key on USB.
//!
//! The touch is driven through a control directory (`--control DIR`,
//! default /run/twofold-vkey): the file `touch` holds `auto` (touched
//! 0.2 s into each wait; the default), `never` (waits, sending
//! KEEPALIVE, until cancelled) or `unplug` (1 s into the wait the device
//! is destroyed, UHID_DESTROY, and the program ends). Each event is
//! appended to `DIR/events` as `<CLOCK_BOOTTIME seconds> <event>`, and
//! `DIR/ready` is written once hidraw exists.
//!
//! The key has a PIN when `DIR/pin` holds one at start (read, then the
//! file removed); the PIN is never written to the events. `DIR/retries`,
//! when it appears, sets the PIN tries left before the next CTAP2
//! request (and is removed). `DIR/replug`, when it appears, unplugs the
//! key and plugs it in again, its credentials and PIN tries kept (and is
//! removed); events `replug`, then `replugged`.

mod ctap2;
mod ctaphid;
mod pin;
mod uhid;

use ctaphid::{cmd, err, frame, Assembler, Got, Message, BROADCAST};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uhid::{Event, Uhid};

/// KEEPALIVE status: waiting for the user's touch.
const UP_NEEDED: u8 = 2;
/// How often KEEPALIVE is sent while waiting (as real keys do).
const KEEPALIVE_EVERY: Duration = Duration::from_millis(100);
/// When `auto` touches.
const AUTO_TOUCH: Duration = Duration::from_millis(200);
/// When `unplug` unplugs.
const UNPLUG_AFTER: Duration = Duration::from_secs(1);

/// CTAPHID_INIT capabilities: WINK (0x01) and CBOR (0x04); MSG answered.
const CAPABILITIES: u8 = 0x05;

struct Shared {
    uhid: Uhid,
    control: PathBuf,
    /// The channel with a CBOR request in progress, and its cancel flag.
    busy: Mutex<Option<(u32, Arc<AtomicBool>)>>,
    next_cid: AtomicU32,
    key: ctap2::Key,
    /// One message's reports are never interleaved with another's.
    send_lock: Mutex<()>,
}

fn boottime() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

impl Shared {
    fn event(&self, what: &str) {
        let line = format!("{:.3} {what}\n", boottime());
        eprint!("twofold-vkey: {line}");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.control.join("events"))
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn send(&self, msg: &Message) {
        let _one = self.send_lock.lock().unwrap_or_else(|p| p.into_inner());
        for r in frame(msg) {
            if let Err(e) = self.uhid.input(&r) {
                eprintln!("twofold-vkey: input report: {e}");
                return;
            }
        }
    }

    fn error(&self, cid: u32, code: u8) {
        self.send(&Message {
            cid,
            cmd: cmd::ERROR,
            data: vec![code],
        });
    }

    fn touch_mode(&self) -> String {
        std::fs::read_to_string(self.control.join("touch"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "auto".into())
    }

    fn release(&self) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn handle(self: &Arc<Self>, msg: Message) {
        if msg.cmd == cmd::INIT {
            return self.init(msg);
        }
        if msg.cid == BROADCAST || msg.cid == 0 {
            return self.error(msg.cid, err::INVALID_CHANNEL);
        }
        match msg.cmd {
            cmd::PING => self.send(&msg),
            cmd::WINK => self.send(&Message {
                data: Vec::new(),
                ..msg
            }),
            // A CTAP2-only key: every U2F instruction is "not supported".
            cmd::MSG => self.send(&Message {
                data: vec![0x6d, 0x00],
                ..msg
            }),
            cmd::CANCEL => {
                let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((cid, flag)) = busy.as_ref() {
                    if *cid == msg.cid {
                        flag.store(true, Ordering::SeqCst);
                        self.event("cancel");
                    }
                }
            }
            cmd::CBOR => self.cbor(msg),
            _ => self.error(msg.cid, err::INVALID_CMD),
        }
    }

    fn init(&self, msg: Message) {
        if msg.data.len() != 8 {
            return self.error(msg.cid, err::INVALID_LEN);
        }
        let cid = if msg.cid == BROADCAST {
            self.next_cid.fetch_add(1, Ordering::SeqCst)
        } else {
            // Resynchronisation: the channel's pending request is dropped.
            if let Some((c, flag)) = self.busy.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                if *c == msg.cid {
                    flag.store(true, Ordering::SeqCst);
                }
            }
            msg.cid
        };
        let mut data = msg.data.clone();
        data.extend_from_slice(&cid.to_be_bytes());
        data.extend_from_slice(&[2, 0, 1, 0, CAPABILITIES]);
        self.event(&format!("init cid={cid:08x}"));
        self.send(&Message {
            cid: msg.cid,
            cmd: cmd::INIT,
            data,
        });
    }

    /// Applies `DIR/retries`, if it is there.
    fn set_retries(&self) {
        let file = self.control.join("retries");
        let Ok(text) = std::fs::read_to_string(&file) else {
            return;
        };
        let _ = std::fs::remove_file(&file);
        match text.trim().parse() {
            Ok(n) => {
                self.key.set_pin_retries(n);
                self.event(&format!("pin retries set to {n}"));
            }
            Err(_) => self.event("pin retries: not a number"),
        }
    }

    fn cbor(self: &Arc<Self>, msg: Message) {
        self.set_retries();
        let req = match ctap2::parse(&msg.data) {
            Ok(r) => r,
            Err(status) => {
                return self.send(&Message {
                    data: vec![status],
                    ..msg
                })
            }
        };
        let flag = Arc::new(AtomicBool::new(false));
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            if busy.is_some() {
                drop(busy);
                return self.error(msg.cid, err::CHANNEL_BUSY);
            }
            *busy = Some((msg.cid, flag.clone()));
        }
        self.event(&format!("cbor {}", req.name()));
        if let Some(s) = self.key.refuse_early(&req) {
            self.event(&format!("refused status=0x{s:02x}"));
            self.release();
            return self.send(&Message {
                data: vec![s],
                ..msg
            });
        }
        if !req.needs_touch() {
            let (answer, note) = self.key.answer(req);
            self.event(&note);
            self.release();
            return self.send(&Message {
                data: answer,
                ..msg
            });
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("touch".into())
            .spawn(move || me.wait_for_touch(msg.cid, req, &flag));
        if spawned.is_err() {
            self.release();
            self.send(&Message {
                cid: msg.cid,
                cmd: cmd::CBOR,
                data: vec![ctap2::status::OTHER],
            });
        }
    }

    /// Waits as the control file says, sending KEEPALIVE, then answers.
    fn wait_for_touch(&self, cid: u32, req: ctap2::Request, cancelled: &AtomicBool) {
        let start = Instant::now();
        let data = loop {
            if cancelled.load(Ordering::SeqCst) {
                self.event("cancelled");
                break vec![ctap2::status::KEEPALIVE_CANCEL];
            }
            let waited = start.elapsed();
            match self.touch_mode().as_str() {
                "never" => {}
                "unplug" if waited >= UNPLUG_AFTER => {
                    self.event("unplug");
                    if let Err(e) = self.uhid.destroy() {
                        eprintln!("twofold-vkey: UHID_DESTROY: {e}");
                    }
                    self.event("unplugged");
                    std::process::exit(0);
                }
                "unplug" => {}
                _ if waited >= AUTO_TOUCH => {
                    self.event("touched");
                    let (answer, note) = self.key.answer(req);
                    self.event(&note);
                    break answer;
                }
                _ => {}
            }
            self.send(&Message {
                cid,
                cmd: cmd::KEEPALIVE,
                data: vec![UP_NEEDED],
            });
            std::thread::sleep(KEEPALIVE_EVERY);
        };
        self.release();
        self.send(&Message {
            cid,
            cmd: cmd::CBOR,
            data,
        });
    }
}

/// Watches for `DIR/replug`.
fn replugs(shared: &Shared) {
    let file = shared.control.join("replug");
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if std::fs::remove_file(&file).is_err() {
            continue;
        }
        shared.event("replug");
        if let Some((_, flag)) = shared
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            flag.store(true, Ordering::SeqCst);
        }
        shared.key.replug();
        match shared.uhid.replug() {
            Ok(()) => shared.event("replugged"),
            Err(e) => shared.event(&format!("replug failed: {e}")),
        }
    }
}

fn run(control: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(control)?;
    let pin_file = control.join("pin");
    let pin = std::fs::read_to_string(&pin_file)
        .ok()
        .map(|p| p.trim_end_matches('\n').to_owned());
    if pin.is_some() {
        std::fs::remove_file(&pin_file)?;
    }
    let uhid = Uhid::create(
        "twofold virtual FIDO2 key",
        0x1209,
        0xf1d0,
        uhid::FIDO_DESCRIPTOR,
    )?;
    let shared = Arc::new(Shared {
        uhid,
        control: control.to_owned(),
        busy: Mutex::new(None),
        next_cid: AtomicU32::new(1),
        key: ctap2::Key::new(pin.as_deref()),
        send_lock: Mutex::new(()),
    });
    shared.event(if pin.is_some() {
        "created with a PIN"
    } else {
        "created"
    });
    let watcher = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("replug".into())
        .spawn(move || replugs(&watcher))?;
    let mut asm = Assembler::default();
    loop {
        match shared.uhid.read()? {
            Event::Start => {
                shared.event("started");
                std::fs::write(control.join("ready"), b"")?;
            }
            Event::Output(report) => match asm.push(&report) {
                Got::Partial => {}
                Got::Error(cid, code) => shared.error(cid, code),
                Got::Message(m) => shared.handle(m),
            },
            Event::Other => {}
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let control = match args.as_slice() {
        [] => PathBuf::from("/run/twofold-vkey"),
        [flag, dir] if flag == "--control" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: twofold-vkey [--control DIR]");
            return ExitCode::from(2);
        }
    };
    match run(&control) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofold-vkey: {e}");
            ExitCode::FAILURE
        }
    }
}
