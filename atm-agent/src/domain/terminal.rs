//! A terminal as the agent tracks it: its state and its supplies.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminalState {
    /// No connection.
    Disconnected,
    /// Connected, power-up seen, nothing downloaded yet.
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
            (_, E::PoweredUp) => S::Connected,
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

#[cfg(test)]
mod tests {
    use super::*;
    use TerminalEvent as E;
    use TerminalState as S;

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
            assert!(!s.on(E::FatalFault).serves_customers());
        }
    }
}
