//! Structured logs on stderr, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    // The protocol libraries log per handshake or per frame for client mistakes (rustls: an IP
    // address as SNI; h2: every unsolicited PING ACK): a client could flood the log, so only
    // their errors are shown, whatever RUST_LOG says about everything else, unless it names
    // them itself.
    let written = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(&written).unwrap_or_else(|_| EnvFilter::new("info"));
    if written.trim().is_empty() {
        filter = EnvFilter::new("info");
    }
    for library in ["rustls", "h2", "hyper", "hyper_util"] {
        if !written.contains(library) {
            if let Ok(directive) = format!("{library}=error").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);

    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
