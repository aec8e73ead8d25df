//! The daemon's PostgreSQL connection: tokio-postgres driven on a
//! current-thread runtime of the connection's own, blocking the calling
//! worker, with a deadline on this side for every call.
//!
//! The server bounds what it times itself (`statement_timeout`,
//! `lock_timeout`), but a server that stops answering altogether (frozen,
//! its disk hung) would hold a blocking client, and the daemon worker in
//! it, until it came back. Here the opening of a connection (its TLS
//! handshake and authentication included) and every call run under
//! `tokio::time::timeout`; a call past its deadline closes the connection
//! for good, so the pool drops it and the login is answered `Unavailable`.

use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Config, Row, Socket, Statement, ToStatement};

/// What a call on a [`PgClient`] failed with.
#[derive(Debug)]
pub(crate) enum PgError {
    /// The server's error, or the connection's.
    Pg(tokio_postgres::Error),
    /// No answer within the deadline: the connection is closed.
    TimedOut(Duration),
    /// The connection's runtime could not be made.
    Io(std::io::Error),
    /// A statement meant to return one row returned this many (`None`:
    /// more than one).
    RowCount(Option<usize>),
}

impl PgError {
    /// The server's SQLSTATE, if the server answered with an error.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            PgError::Pg(e) => e.code(),
            PgError::TimedOut(_) | PgError::Io(_) | PgError::RowCount(_) => None,
        }
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> PgError {
        PgError::Pg(e)
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Pg(e) => e.fmt(f),
            PgError::TimedOut(d) => write!(f, "no answer within {} s", d.as_secs()),
            PgError::Io(e) => e.fmt(f),
            PgError::RowCount(Some(n)) => write!(f, "a query returned {n} rows, not one"),
            PgError::RowCount(None) => write!(f, "a query returned more than one row"),
        }
    }
}

/// Runs `$call` (a future made from the client `$c`) on the connection
/// of `$s` within its deadline; past it, closes the connection for good.
macro_rules! within {
    ($s:expr, |$c:ident| $call:expr) => {{
        let s = $s;
        if s.timed_out {
            Err(PgError::TimedOut(s.deadline))
        } else {
            let $c = &s.client;
            let call = $call;
            let (deadline, unbounded) = (s.deadline, s.unbounded);
            let rt =
                s.rt.as_ref()
                    .expect("the runtime lives as long as the client");
            // The timer is made inside the runtime, which owns the clock.
            match rt.block_on(async move {
                if unbounded {
                    Ok(call.await)
                } else {
                    tokio::time::timeout(deadline, call).await
                }
            }) {
                Ok(r) => r.map_err(PgError::Pg),
                Err(_) => {
                    // Whatever the server does later, this connection is done.
                    s.conn.abort();
                    s.timed_out = true;
                    Err(PgError::TimedOut(s.deadline))
                }
            }
        }
    }};
}

/// One open connection.
pub(crate) struct PgClient {
    /// `None` only while dropping.
    rt: Option<Runtime>,
    client: Client,
    /// The task that drives the connection (aborted on a timeout).
    conn: JoinHandle<()>,
    /// How long one call may wait for the server.
    deadline: Duration,
    /// Calls wait for the server as long as it takes (`audit verify`'s
    /// walk, which also lifts `statement_timeout`).
    unbounded: bool,
    timed_out: bool,
}

impl PgClient {
    /// Opens a connection with `config` over `tls`, within `within` in
    /// all; each later call may take up to `deadline`.
    pub fn connect<T>(
        config: &Config,
        tls: T,
        within: Duration,
        deadline: Duration,
    ) -> Result<PgClient, PgError>
    where
        T: MakeTlsConnect<Socket> + Send + 'static,
        T::TlsConnect: Send,
        T::Stream: Send + 'static,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        PgClient::open(config, tls, within, deadline, None)
    }

    /// [`PgClient::connect`]; with `notes`, the server's notifications
    /// (`LISTEN`) are sent there as [`Heard::Notified`] under the tag, and
    /// [`Heard::Closed`] when the connection ends. They arrive while a
    /// call or [`PgClient::next_heard`] drives the connection.
    pub fn open<T>(
        config: &Config,
        tls: T,
        within: Duration,
        deadline: Duration,
        notes: Option<(u64, UnboundedSender<Heard>)>,
    ) -> Result<PgClient, PgError>
    where
        T: MakeTlsConnect<Socket> + Send + 'static,
        T::TlsConnect: Send,
        T::Stream: Send + 'static,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(PgError::Io)?;
        let opened = rt.block_on(async { tokio::time::timeout(within, config.connect(tls)).await });
        let (client, connection) = match opened {
            Ok(Ok(pair)) => pair,
            // A host name's lookup runs on a blocking thread that the
            // timeout cannot stop: the runtime is let go without waiting.
            Ok(Err(e)) => {
                rt.shutdown_background();
                return Err(PgError::Pg(e));
            }
            Err(_) => {
                rt.shutdown_background();
                return Err(PgError::TimedOut(within));
            }
        };
        let conn = match notes {
            None => rt.spawn(async move {
                let _ = connection.await;
            }),
            Some((tag, notes)) => rt.spawn(async move {
                let mut connection = connection;
                // Polling for messages also drives the connection's calls.
                while let Some(Ok(m)) =
                    futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await
                {
                    if let AsyncMessage::Notification(n) = m {
                        let _ = notes.send(Heard::Notified {
                            tag,
                            channel: n.channel().to_owned(),
                            payload: n.payload().to_owned(),
                        });
                    }
                }
                let _ = notes.send(Heard::Closed(tag));
            }),
        };
        Ok(PgClient {
            rt: Some(rt),
            client,
            conn,
            deadline,
            unbounded: false,
            timed_out: false,
        })
    }

    /// Lets calls wait for the server without a deadline (`true`) or
    /// bounds them again (`false`).
    pub fn set_unbounded(&mut self, on: bool) {
        self.unbounded = on;
    }

    /// Whether a call went past its deadline (the connection is closed).
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether the connection is closed (broken, or past a deadline).
    pub fn is_closed(&self) -> bool {
        self.timed_out || self.client.is_closed()
    }

    pub fn prepare(&mut self, sql: &str) -> Result<Statement, PgError> {
        within!(self, |c| c.prepare(sql))
    }

    pub fn query<S: ?Sized + ToStatement>(
        &mut self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError> {
        within!(self, |c| c.query(statement, params))
    }

    pub fn query_one<S: ?Sized + ToStatement>(
        &mut self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, PgError> {
        within!(self, |c| c.query_one(statement, params))
    }

    pub fn query_opt<S: ?Sized + ToStatement>(
        &mut self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, PgError> {
        within!(self, |c| c.query_opt(statement, params))
    }

    pub fn execute<S: ?Sized + ToStatement>(
        &mut self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError> {
        within!(self, |c| c.execute(statement, params))
    }

    /// Runs statements without parameters (the simple query protocol).
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), PgError> {
        within!(self, |c| c.batch_execute(sql))
    }

    /// Three prepared statements sent together (one round trip): their
    /// rows, in order, or the first error.
    pub fn query_three(
        &mut self,
        calls: [(&Statement, &[&(dyn ToSql + Sync)]); 3],
    ) -> Result<[Vec<Row>; 3], PgError> {
        let [(a, pa), (b, pb), (d, pd)] = calls;
        within!(self, |c| async move {
            let (ra, rb, rd) =
                futures_util::future::try_join3(c.query(a, pa), c.query(b, pb), c.query(d, pd))
                    .await?;
            Ok([ra, rb, rd])
        })
    }

    /// The next of `notes` within `wait`, driving this connection (so its
    /// notifications arrive) meanwhile; `None` when none came.
    pub fn next_heard(
        &mut self,
        notes: &mut UnboundedReceiver<Heard>,
        wait: Duration,
    ) -> Option<Heard> {
        let rt = self.rt.as_ref()?;
        rt.block_on(async { tokio::time::timeout(wait, notes.recv()).await })
            .ok()
            .flatten()
    }
}

/// What a listening connection (and whoever stops its listener) reports;
/// the tag tells one connection's reports from an earlier one's.
#[derive(Debug)]
pub(crate) enum Heard {
    /// A notification on `channel`, with its payload.
    Notified {
        tag: u64,
        channel: String,
        payload: String,
    },
    /// The connection ended.
    Closed(u64),
    /// The listener is to stop.
    Stop,
}

/// `first`, then `then`, their requests sent together (one round trip):
/// `then`'s result, or `first`'s error.
async fn after<T>(
    first: impl std::future::Future<Output = Result<(), tokio_postgres::Error>>,
    then: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    // `join` polls `first` first: each sends its request when first
    // polled, so the server gets them in this order.
    let (a, b) = futures_util::future::join(first, then).await;
    a?;
    b
}

impl PgClient {
    /// [`PgClient::query`] after the simple query `first`, if any, in one
    /// round trip (a transaction's `BEGIN` sent with its first statement).
    pub fn query_after(
        &mut self,
        first: Option<&str>,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError> {
        match first {
            None => self.query(statement, params),
            Some(f) => within!(self, |c| after(
                c.batch_execute(f),
                c.query(statement, params)
            )),
        }
    }

    /// [`PgClient::execute`] after `first`, as [`PgClient::query_after`].
    pub fn execute_after(
        &mut self,
        first: Option<&str>,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError> {
        match first {
            None => self.execute(statement, params),
            Some(f) => within!(self, |c| after(
                c.batch_execute(f),
                c.execute(statement, params)
            )),
        }
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        self.conn.abort();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
