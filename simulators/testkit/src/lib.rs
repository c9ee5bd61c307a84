//! # testkit — what the daemons' integration tests share
//!
//! The agent's and the switch's integration tests start real servers on `127.0.0.1:0` and talk to
//! them the way the other side does. Everything they have in common lives here, so the two
//! harnesses do not drift apart; what needs a daemon (starting the switch or the agent in-process,
//! writing their configurations from their own config types) stays in each daemon's
//! `tests/common` and in `atm-lab`.
//!
//! This crate depends on no daemon: `atm-agent` and `host-switch` dev-depend on it, `atm-lab`
//! depends on it, and none of them is below it in the graph.
//!
//! Layout:
//! - [`iso_client`]: a framed ISO 8583 client over mutual TLS (or any stream), as an agent talks
//!   to the switch; [`iso_messages`]: the agent↔switch requests a test sends.
//! - [`ledger`]: ledger-sim seeded with wallet accounts, balances, movements, the books check.
//! - [`custodian_keys`]: keys as custodians hold them (components and check values), the lab's
//!   card PINs and the issuer's PVV file, the KEK files of the two key stores.
//! - [`relay`]: a TCP relay that can be cut and restored (a network outage on demand).
//! - [`wait`]: polling for a condition with a deadline, waiting for a listener.
//! - [`terminals`]: the lab's terminal ids and LUNOs.
//! - [`evidence`]: what security tests look at afterwards: captured log lines, every byte a
//!   store left on disk.
#![forbid(unsafe_code)]

pub mod custodian_keys;
pub mod evidence;
pub mod iso_client;
pub mod iso_messages;
pub mod ledger;
pub mod relay;
pub mod terminals;
pub mod wait;

pub use mtls::{PkiFiles, TestPki};

/// A fresh test PKI written into `dir` (CA, switch and agent certificates and keys).
pub fn pki_in(dir: &std::path::Path) -> (TestPki, PkiFiles) {
    let pki = TestPki::generate();
    let files = pki.write_to_dir(dir).expect("write the test PKI");
    (pki, files)
}
