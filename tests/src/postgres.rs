//! A real PostgreSQL server for the fleet-mode tests: Debian's
//! `postgresql` binaries, `initdb` and `pg_ctl` run as the `postgres`
//! user in a temp directory, listening on a Unix socket only (no TCP),
//! with trust authentication inside that directory.
//!
//! [`PgServer::start`] makes one for a test (the stop-and-restart tests
//! need their own); [`PgDatabase::new`] gives a test its own empty
//! database, on the server `scripts/test` started (`TWOFOLD_TEST_PGHOST`,
//! its socket directory) when there is one, else on a server of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use twofold_config::{Backend, Config, Seconds};

/// The directory of Debian's PostgreSQL server binaries (`initdb` and
/// `pg_ctl` are not on the PATH in the package).
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    found
        .pop()
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/deps installs them)")
}

fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(program);
    c
}

/// A PostgreSQL server of its own, stopped and removed when dropped.
#[derive(Debug)]
pub struct PgServer {
    dir: tempfile::TempDir,
    /// The TCP port of a server that listens on 127.0.0.1 (with TLS).
    tcp_port: Option<u16>,
}

impl PgServer {
    /// `initdb` and start a server in a new temp directory (about 2 s).
    pub fn start() -> PgServer {
        let server = PgServer::init();
        server.pg_ctl_start();
        server
    }

    /// A server that also listens on 127.0.0.1 at a free port with TLS
    /// on (`ssl=on`, the certificate and key of `cert`/`key`), where
    /// `pg_hba.conf` admits TCP connections over TLS only, with a password
    /// (`scram-sha-256`; the superuser's is `password`). The Unix socket
    /// stays `trust` for the test's own psql.
    pub fn start_tls(cert: &Path, key: &Path, password: &str) -> PgServer {
        let mut server = PgServer::init();
        let data = server.dir.path().join("data");
        for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
            std::fs::copy(from, data.join(to)).expect("copy the server's certificate");
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(data.join(to))
                .status()
                .unwrap();
            assert!(status.success());
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data.join(to), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("pg_hba.conf");
        let port = crate::smtp::free_port();
        server.tcp_port = Some(port);
        server.pg_ctl_start();
        psql_at(
            &server.socket_dir(),
            port,
            "postgres",
            &format!("ALTER ROLE postgres PASSWORD '{password}'"),
        );
        server
    }

    /// The TCP port of a [`PgServer::start_tls`] server.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp_port
    }

    /// The port (TCP, and the name of the socket file).
    pub fn port(&self) -> u16 {
        self.tcp_port.unwrap_or(5432)
    }

    fn init() -> PgServer {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("twofold-pg-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&data)
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "chown to postgres");
        let out = as_postgres(&bin_dir().join("initdb"))
            .args([
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PgServer {
            dir,
            tcp_port: None,
        }
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn pg_ctl_start(&self) {
        let dir = self.dir.path();
        let out = as_postgres(&bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("server.log"))
            .arg("-o")
            .arg(match self.tcp_port {
                None => format!(
                    "-k {} -c listen_addresses='' -c max_connections=300",
                    dir.display()
                ),
                Some(port) => format!(
                    "-k {} -p {port} -c listen_addresses='127.0.0.1' -c max_connections=300 \
                     -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key",
                    dir.display()
                ),
            })
            .args(["-w", "-t", "30", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server (fast shutdown: sessions are ended).
    pub fn stop(&self) {
        let out = as_postgres(&bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it again after [`PgServer::stop`].
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// Stops every process of the server with SIGSTOP: connections stay
    /// open and new ones queue, but nothing answers (a server whose disk
    /// hung). [`PgServer::thaw`] lets it run again.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Undoes [`PgServer::freeze`].
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Sends `sig` to the postmaster and each of its children.
    fn signal(&self, sig: libc::c_int) {
        let pidfile = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .expect("postmaster.pid");
        let main: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
        let children = Command::new("pgrep")
            .args(["-P", &main.to_string()])
            .output()
            .expect("pgrep");
        let mut pids = vec![main];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok()),
        );
        for pid in pids {
            // SAFETY: kill(2) on a pid of the server this test started.
            let r = unsafe { libc::kill(pid, sig) };
            assert_eq!(r, 0, "signal {sig} to server process {pid}");
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_postgres(&bin_dir().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `sql` as the superuser on the server at `socket_dir`.
pub fn psql(socket_dir: &Path, db: &str, sql: &str) -> String {
    psql_at(socket_dir, 5432, db, sql)
}

/// [`psql`] on the server whose port (socket file) is `port`.
pub fn psql_at(socket_dir: &Path, port: u16, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg("-h")
        .arg(socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .args([
            "-U",
            "postgres",
            "-d",
            db,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An empty database of one test, on the shared server or its own.
#[derive(Debug)]
pub struct PgDatabase {
    /// The server, when the test started its own.
    pub own: Option<PgServer>,
    /// The server's socket directory.
    pub socket_dir: PathBuf,
    /// The database's name.
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl PgDatabase {
    /// A new empty database: on `TWOFOLD_TEST_PGHOST` (the server
    /// `scripts/test` started) when set, else on a server of its own.
    pub fn new() -> PgDatabase {
        let (own, socket_dir) = match std::env::var_os("TWOFOLD_TEST_PGHOST") {
            Some(dir) if !dir.is_empty() => (None, PathBuf::from(dir)),
            _ => {
                let s = PgServer::start();
                let dir = s.socket_dir();
                (Some(s), dir)
            }
        };
        PgDatabase::on(own, socket_dir)
    }

    /// A new empty database on a server of its own (a test that stops it).
    pub fn own_server() -> PgDatabase {
        let s = PgServer::start();
        let dir = s.socket_dir();
        PgDatabase::on(Some(s), dir)
    }

    fn on(own: Option<PgServer>, socket_dir: PathBuf) -> PgDatabase {
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        psql(&socket_dir, "postgres", &format!("CREATE DATABASE {name}"));
        PgDatabase {
            own,
            socket_dir,
            name,
        }
    }

    /// Sets `config`'s `[store]` to this database.
    pub fn configure(&self, config: &mut Config) {
        config.store.backend = Backend::Postgres;
        config.store.host = self.socket_dir.display().to_string();
        config.store.dbname = self.name.clone();
        config.store.user = "postgres".into();
        config.store.connect_timeout = Seconds(2);
        config.store.statement_timeout = Seconds(3);
    }

    /// Runs `sql` on this database as the superuser.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.socket_dir, &self.name, sql)
    }
}

impl Default for PgDatabase {
    fn default() -> Self {
        PgDatabase::new()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.own.is_none() {
            let _ = Command::new("psql")
                .arg("-h")
                .arg(&self.socket_dir)
                .args(["-U", "postgres", "-d", "postgres", "-X", "-q", "-c"])
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
