//! A raw protocol client for tests: sends each JSON request given on the
//! command line after the handshake and prints every response as one JSON
//! line. Tests run it under another uid to check the daemon's authorization,
//! which comes from SO_PEERCRED and so needs a real separate process.
//!
//! Usage: `tf-client SOCKET REQUEST_JSON...`

use std::io::Write;
use std::path::Path;
use std::time::Duration;
use twofold_proto::{read_frame, write_frame, Client, Response};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((socket, requests)) = args.split_first() else {
        eprintln!("usage: tf-client SOCKET REQUEST_JSON...");
        std::process::exit(2);
    };
    let mut client = match Client::connect(Path::new(socket), Duration::from_secs(5), "tf-client") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tf-client: {e}");
            std::process::exit(3);
        }
    };
    let stream = client.stream_mut();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut out = std::io::stdout().lock();
    for req in requests {
        if let Err(e) = write_frame(stream, req.as_bytes()) {
            let _ = writeln!(out, "{{\"closed\":{:?}}}", e.to_string());
            return;
        }
        match read_frame(stream) {
            Ok(body) => match serde_json::from_slice::<Response>(&body) {
                Ok(resp) => {
                    let _ = writeln!(out, "{}", serde_json::to_string(&resp).unwrap_or_default());
                }
                Err(e) => {
                    let _ = writeln!(out, "{{\"unparsable\":{:?}}}", e.to_string());
                }
            },
            Err(e) => {
                let _ = writeln!(out, "{{\"closed\":{:?}}}", e.to_string());
                return;
            }
        }
    }
}
