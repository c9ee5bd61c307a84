//! A terminal as the agent tracks it: its state and its supplies; the addresses it may connect
//! from ([`AddressRange`]); and the count of PIN blocks from it that did not decode
//! ([`PinFormatErrors`]), which takes it out of service when an attacker uses the PIN path as
//! an oracle.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminalState {
    /// No connection.
    Disconnected,
    /// Connected (or powered up), its configuration not yet confirmed.
    Connected,
    /// Downloading customization data.
    Loading,
    InService,
    OutOfService,
    /// A technician is at the terminal (supervisor mode).
    Supervisor,
    /// A fatal device fault was reported.
    Fault,
}

/// Events that move a terminal between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalEvent {
    /// A connection was identified as this terminal (the agent leads the start-up from here).
    Connected,
    PoweredUp,
    DownloadStarted,
    WentInService,
    WentOutOfService,
    SupervisorEntered,
    SupervisorExited,
    FatalFault,
    Disconnected,
}

impl TerminalState {
    /// The state after `event`. Every event is meaningful in every state (a terminal can lose
    /// power or its connection at any time), so this is total.
    pub fn on(self, event: TerminalEvent) -> TerminalState {
        use TerminalEvent as E;
        use TerminalState as S;
        match (self, event) {
            (_, E::Disconnected) => S::Disconnected,
            (_, E::Connected | E::PoweredUp) => S::Connected,
            (_, E::DownloadStarted) => S::Loading,
            (_, E::WentInService) => S::InService,
            (_, E::WentOutOfService) => S::OutOfService,
            (_, E::SupervisorEntered) => S::Supervisor,
            (S::Supervisor, E::SupervisorExited) => S::OutOfService,
            (s, E::SupervisorExited) => s,
            (_, E::FatalFault) => S::Fault,
        }
    }

    pub fn serves_customers(self) -> bool {
        self == TerminalState::InService
    }
}

/// One cassette's notes as the agent counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CassetteCount {
    pub cassette_type: u8,
    pub denomination_minor: u64,
    pub notes: u32,
    pub low: bool,
}

/// An address a terminal may connect from: one IP address (`10.1.2.3`) or a CIDR range
/// (`10.1.2.0/24`, `fd00::/64`). IPv4 peers seen through an IPv6 listener (`::ffff:10.1.2.3`)
/// are compared as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix_len: u8,
}

impl AddressRange {
    pub fn contains(&self, peer: IpAddr) -> bool {
        match (self.network, peer.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(p)) => {
                prefix_eq(&net.octets(), &p.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(p)) => {
                prefix_eq(&net.octets(), &p.octets(), self.prefix_len)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// Why an address range does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRangeError {
    #[error("{0:?} is not an IP address or a CIDR range (10.1.2.3, 10.1.2.0/24)")]
    Syntax(String),
    #[error("{0:?}: the prefix length is longer than the address")]
    PrefixTooLong(String),
    #[error("{0:?}: bits are set past the prefix length (did you mean the network address?)")]
    HostBits(String),
}

impl FromStr for AddressRange {
    type Err = AddressRangeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || AddressRangeError::Syntax(s.to_owned());
        let (ip, prefix_len) = match s.split_once('/') {
            Some((ip, len)) => (
                ip.parse::<IpAddr>().map_err(|_| syntax())?,
                Some(len.parse::<u8>().map_err(|_| syntax())?),
            ),
            None => (s.parse::<IpAddr>().map_err(|_| syntax())?, None),
        };
        let ip = ip.to_canonical();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix_len.unwrap_or(max);
        if prefix_len > max {
            return Err(AddressRangeError::PrefixTooLong(s.to_owned()));
        }
        let range = AddressRange {
            network: ip,
            prefix_len,
        };
        // A range written with host bits (10.1.2.3/24) is most likely a typo for one address.
        if !range.network_is_clean() {
            return Err(AddressRangeError::HostBits(s.to_owned()));
        }
        Ok(range)
    }
}

impl AddressRange {
    /// No bit set past the prefix length.
    fn network_is_clean(&self) -> bool {
        let bytes: Vec<u8> = match self.network {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        bytes.iter().enumerate().all(|(i, b)| {
            let start = i * 8;
            let keep = usize::from(self.prefix_len).saturating_sub(start).min(8);
            keep == 8 || b & (0xFFu8 >> keep) == 0
        })
    }
}

impl From<IpAddr> for AddressRange {
    /// The one address.
    fn from(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        AddressRange {
            network: ip,
            prefix_len: if ip.is_ipv4() { 32 } else { 128 },
        }
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix_len == max {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix_len)
        }
    }
}

/// PIN blocks from one terminal that did not decode (under its PIN key, for the card's PAN) in a
/// sliding window. ISO 9564 format 0 mixes the PAN into the block: a terminal that sends one
/// PIN block with many substituted PANs learns PIN digits from which ones decode. A customer
/// makes such an error rarely (a PIN pad with the wrong key makes every block fail, and then
/// the terminal must be looked at too); past the threshold the terminal goes out of service.
#[derive(Debug, Clone)]
pub struct PinFormatErrors {
    threshold: u32,
    window_ms: u64,
    /// When each error in the window happened, oldest first; never longer than `threshold`.
    at_ms: VecDeque<u64>,
}

impl PinFormatErrors {
    pub fn new(threshold: u32, window_ms: u64) -> Self {
        Self {
            threshold: threshold.max(1),
            window_ms,
            at_ms: VecDeque::new(),
        }
    }

    /// Counts an error at `now_ms`; true when the window now holds `threshold` of them.
    pub fn record(&mut self, now_ms: u64) -> bool {
        while self
            .at_ms
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= self.window_ms)
        {
            self.at_ms.pop_front();
        }
        self.at_ms.push_back(now_ms);
        while self.at_ms.len() > self.threshold as usize {
            self.at_ms.pop_front();
        }
        self.at_ms.len() >= self.threshold as usize
    }

    /// Errors in the window at `now_ms`.
    pub fn count(&self, now_ms: u64) -> usize {
        self.at_ms
            .iter()
            .filter(|t| now_ms.saturating_sub(**t) < self.window_ms)
            .count()
    }

    /// Forgets every error (an operator put the terminal back in service).
    pub fn clear(&mut self) {
        self.at_ms.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TerminalEvent as E;
    use TerminalState as S;

    fn range(s: &str) -> AddressRange {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_range_holds_its_addresses_only() {
        assert!(range("10.1.2.3").contains(ip("10.1.2.3")));
        assert!(!range("10.1.2.3").contains(ip("10.1.2.4")));
        assert!(range("10.1.2.0/24").contains(ip("10.1.2.200")));
        assert!(!range("10.1.2.0/24").contains(ip("10.1.3.1")));
        assert!(range("10.1.2.0/23").contains(ip("10.1.3.1")));
        assert!(range("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(
            range("10.1.2.3").contains(ip("::ffff:10.1.2.3")),
            "IPv4 through an IPv6 listener"
        );
        assert!(range("fd00::/64").contains(ip("fd00::1")));
        assert!(!range("fd00::/64").contains(ip("10.1.2.3")));
        assert_eq!(range("10.1.2.0/24").to_string(), "10.1.2.0/24");
        assert_eq!(range("10.1.2.3/32").to_string(), "10.1.2.3");
    }

    #[test]
    fn a_bad_address_range_is_refused_with_the_reason() {
        for (s, e) in [
            ("10.1.2", AddressRangeError::Syntax("10.1.2".into())),
            ("10.1.2.0/x", AddressRangeError::Syntax("10.1.2.0/x".into())),
            (
                "10.1.2.0/33",
                AddressRangeError::PrefixTooLong("10.1.2.0/33".into()),
            ),
            (
                "10.1.2.3/24",
                AddressRangeError::HostBits("10.1.2.3/24".into()),
            ),
        ] {
            assert_eq!(s.parse::<AddressRange>().unwrap_err(), e, "{s}");
        }
    }

    #[test]
    fn pin_format_errors_trip_at_the_threshold_within_the_window_only() {
        let mut e = PinFormatErrors::new(3, 1_000);
        assert!(!e.record(0));
        assert!(!e.record(10));
        assert!(e.record(20), "third error within a second");
        let mut e = PinFormatErrors::new(3, 1_000);
        assert!(!e.record(0));
        assert!(!e.record(500));
        assert!(!e.record(1_000), "the first one left the window");
        assert_eq!(e.count(1_000), 2);
        assert!(e.record(1_200));
        e.clear();
        assert_eq!(e.count(1_200), 0);
    }

    #[test]
    fn start_up_reaches_in_service() {
        let s = S::Disconnected
            .on(E::PoweredUp)
            .on(E::DownloadStarted)
            .on(E::WentInService);
        assert_eq!(s, S::InService);
        assert!(s.serves_customers());
    }

    #[test]
    fn supervisor_exit_leaves_the_terminal_out_of_service_until_told() {
        assert_eq!(
            S::InService
                .on(E::SupervisorEntered)
                .on(E::SupervisorExited),
            S::OutOfService
        );
        assert_eq!(S::InService.on(E::SupervisorExited), S::InService);
    }

    #[test]
    fn disconnect_and_power_up_win_from_every_state() {
        for s in [
            S::Disconnected,
            S::Connected,
            S::Loading,
            S::InService,
            S::OutOfService,
            S::Supervisor,
            S::Fault,
        ] {
            assert_eq!(s.on(E::Disconnected), S::Disconnected);
            assert_eq!(s.on(E::PoweredUp), S::Connected);
            assert_eq!(s.on(E::Connected), S::Connected);
            assert!(!s.on(E::FatalFault).serves_customers());
        }
    }
}
