//! `doran-server`: the relay binary.
//!
//! Opens its stores — by default under the data directory (`relay.sqlite` and
//! `blobs/`), or PostgreSQL and an S3-compatible store ([`backends`]) — binds the
//! listen address, prints `listening on http://ADDR` (`https://` with TLS)
//! on stdout (the actual address, so `--listen 127.0.0.1:0` is usable from scripts and
//! tests), and serves until SIGTERM or SIGINT, then shuts down gracefully and exits 0.
//!
//! Exit codes: 0 after a graceful shutdown; 2 for a configuration that cannot be used
//! (bad config file, only one of the TLS files, unreadable or invalid certificate or
//! key); 1 for failures while starting or running (data dir, address in use, ...).

use std::{io::Write as _, process::ExitCode, sync::Arc};

use clap::Parser;
use doran_server::{
    backends,
    cluster::Cluster,
    config::{Cli, Config},
    conns, serve, serve_tls,
    state::AppState,
    store::PgOptions,
    tls,
};
use tokio_rustls::rustls::ServerConfig;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("doran-server: {e}");
            return ExitCode::from(2);
        }
    };
    // Read the certificate and key before anything else, so a bad file stops the
    // relay at once with the file named.
    let tls = match config
        .tls_files()
        .map(|(cert, key)| tls::server_config(cert, key))
    {
        None => None,
        Some(Ok(tls)) => Some(tls),
        Some(Err(e)) => {
            eprintln!("doran-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(config.log_json);
    // One TLS provider for the process (ring, as everywhere in the workspace): the S3
    // client's rustls has none bundled. Already installed is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let files = raise_file_limit();
    let wanted = config.limits.max_connections;
    config.limits.max_connections =
        conns::effective_cap(wanted, files, config.limits.max_concurrent_uploads);
    tracing::info!(
        open_files = files,
        max_connections = config.limits.max_connections,
        wanted,
        "connection cap"
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("doran-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, tls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "relay failed");
            eprintln!("doran-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(json: bool) {
    let filter = EnvFilter::try_from_env("DORAN_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Without `log_internal_errors(false)` a failed write (stderr closed, e.g. the log
    // collector died) makes tracing-subscriber `eprintln!`, which panics the task that
    // logged: the signal task would die and SIGTERM would be ignored.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Raises the soft limit on open files to the hard limit and returns the limit now in
/// force. Every connection holds a file descriptor; the usual soft limit of 1024 let
/// a thousand idle sockets make `/healthz` and new devices fail. What is left below
/// the limit caps the connections the relay accepts ([`conns::effective_cap`]).
#[cfg(unix)]
fn raise_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Elsewhere there is no such limit to raise, and none to keep the connection cap
/// under.
#[cfg(not(unix))]
fn raise_file_limit() -> u64 {
    u64::MAX
}

async fn run(
    config: Config,
    tls: Option<Arc<ServerConfig>>,
) -> Result<(), Box<dyn std::error::Error>> {
    // This process's id among the relays of a cluster.
    let origin = format!("{:016x}", rand::random::<u64>());
    let opened = {
        let (config, origin) = (config.clone(), origin.clone());
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || backends::open(&config, &origin, &rt)).await??
    };
    let cluster = match (&opened.postgres, &config.database) {
        (Some(pg), Some(url)) => {
            let mut options = PgOptions::new(url.clone());
            options.schema.clone_from(&config.database_schema);
            Cluster::postgres(pg, options.pg_config()?)
        }
        _ => Cluster::alone(),
    };
    let listener = listen(config.listen)?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, tls = tls.is_some(), data_dir = %config.data_dir.display(), server_id = %config.server_id, cluster = cluster.is_shared(), "relay starting");
    let id = config.server_id.trim().to_ascii_lowercase();
    if !["https://", "http://", "wss://", "ws://"]
        .iter()
        .any(|scheme| id.starts_with(scheme))
    {
        // Devices bind a URL id to the address they connect to; this one binds nothing.
        tracing::warn!(server_id = %config.server_id, "the relay's id is not its public URL: a server in the middle forwarding to this relay could sign devices in here (set --server-id to the URL devices use)");
    }
    let state = AppState::with_cluster(config, opened.stores, cluster);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {scheme}://{addr}")?;
        out.flush()?;
    }
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
        tracing::info!("shutting down");
    });
    match tls {
        Some(tls) => serve_tls(state, listener, tls).await?,
        None => serve(state, listener).await?,
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connections the kernel may hold, handshake done, until the relay accepts them.
/// A relay restart has every device connect again at once, and a busy relay takes
/// them one by one; a connection the queue has no room for is dropped, and its
/// device tries again a second later (then three, then seven). A listener gets 128
/// by default (the std library's and tokio's `bind`); the kernel caps this at
/// `net.core.somaxconn` (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`], the address reusable at once (as
/// `bind` makes it) so that a restarted relay listens where it did.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
