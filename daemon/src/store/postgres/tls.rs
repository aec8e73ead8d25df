//! TLS to PostgreSQL over TCP (`[store] tls`, `ca_file`): rustls with the
//! ring provider, the server's certificate checked against `ca_file` (or
//! the system's CAs) and against `[store] host`, through tokio-postgres's
//! TLS hook. A Unix socket, and `tls = "off"` to a loopback address, use none.

use super::client::{Heard, PgClient, PgError};
use crate::store::StoreError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::NoTls;
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;
use twofold_config::StoreConfig;

/// How connections are made: in the clear, or through rustls.
#[derive(Clone)]
pub(crate) enum Connector {
    /// No TLS (a Unix socket, or `tls = "off"` to loopback).
    Plain,
    /// rustls, with the roots of `ca_file` or the system's.
    Tls(MakeRustlsConnect),
}

impl Connector {
    /// The connector and the TLS mode `cfg` asks for, setting the mode on
    /// `pg`. Fails when `ca_file` cannot be read or holds no certificate.
    pub fn new(cfg: &StoreConfig, pg: &mut Config) -> Result<Connector, StoreError> {
        let Some(required) = cfg.tls_mode() else {
            pg.ssl_mode(SslMode::Disable);
            return Ok(Connector::Plain);
        };
        pg.ssl_mode(if required {
            SslMode::Require
        } else {
            SslMode::Prefer
        });
        let mut roots = rustls::RootCertStore::empty();
        match &cfg.ca_file {
            Some(path) => {
                for cert in ca_file(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(StoreError::Database(
                        "[store] tls: the system has no CA certificates; name the server's CA \
                         in [store] ca_file"
                            .into(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Database(format!("TLS settings: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector::Tls(MakeRustlsConnect::new(config)))
    }

    /// Opens a connection with `pg`'s parameters within `within`; each
    /// call on it may then wait `deadline` for the server.
    pub fn connect(
        &self,
        pg: &Config,
        within: Duration,
        deadline: Duration,
    ) -> Result<PgClient, StoreError> {
        match self {
            Connector::Plain => PgClient::connect(pg, NoTls, within, deadline),
            Connector::Tls(t) => PgClient::connect(pg, t.clone(), within, deadline),
        }
        .map_err(connect_error)
    }

    /// [`Connector::connect`] for a listening connection
    /// ([`PgClient::open`] with its notes).
    pub fn connect_listening(
        &self,
        pg: &Config,
        within: Duration,
        deadline: Duration,
        notes: (u64, UnboundedSender<Heard>),
    ) -> Result<PgClient, StoreError> {
        match self {
            Connector::Plain => PgClient::open(pg, NoTls, within, deadline, Some(notes)),
            Connector::Tls(t) => PgClient::open(pg, t.clone(), within, deadline, Some(notes)),
        }
        .map_err(connect_error)
    }
}

/// A failed connection, with what to check when it was the certificate.
fn connect_error(e: PgError) -> StoreError {
    let PgError::Pg(e) = e else {
        return StoreError::from(e);
    };
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    if text.contains("certificate") || text.contains("TLS") || text.contains("tls") {
        return StoreError::Database(format!(
            "postgres: {text} (check [store] ca_file, and that the server's certificate names \
             [store] host)"
        ));
    }
    StoreError::from(e)
}

/// The certificates of a PEM file (at least one).
fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let bad =
        |what: String| StoreError::Database(format!("[store] ca_file {}: {what}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}
