//! The one way a daemon of this workspace is told to stop.
//!
//! `systemctl stop`, `docker stop`, `kubectl delete` and a plain `kill` send SIGTERM; a terminal's
//! Ctrl-C sends SIGINT. Both mean the same to our daemons: stop accepting, finish or journal what
//! is in flight, flush, and exit 0 within a bounded time. Without a handler SIGTERM kills a tokio
//! process on the spot (exit 143) and in-flight transactions are cut off without an answer, so
//! every daemon awaits [`install`]'s future instead of `tokio::signal::ctrl_c()`.

use std::fmt;

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Terminate,
    Interrupt,
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Interrupt => "SIGINT",
        })
    }
}

/// Installs the handlers now and returns the future that resolves at the first SIGTERM or
/// SIGINT. A daemon calls this before it starts serving, so a SIGTERM that arrives during
/// start-up is not the default (fatal) action but a stop request seen as soon as start-up is done.
/// Errors only when the handlers cannot be installed.
#[cfg(unix)]
pub fn install() -> std::io::Result<impl std::future::Future<Output = StopSignal>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => StopSignal::Terminate,
            _ = int.recv() => StopSignal::Interrupt,
        }
    })
}

/// Elsewhere only Ctrl-C exists.
#[cfg(not(unix))]
pub fn install() -> std::io::Result<impl std::future::Future<Output = StopSignal>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        StopSignal::Interrupt
    })
}

/// [`install`], then wait.
pub async fn wait() -> std::io::Result<StopSignal> {
    Ok(install()?.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named_as_operators_know_them() {
        assert_eq!(StopSignal::Terminate.to_string(), "SIGTERM");
        assert_eq!(StopSignal::Interrupt.to_string(), "SIGINT");
    }
}
