//! The messages the terminal sends, built with the `protocols::ndc` types (never by hand), so
//! every dialect difference (LUNO length, TVN slot, amount width, cassette layout, `9`/`B`,
//! `A`/`C` rejects, last transaction status) comes from the codec.
//!
//! Messages are built without TVN or MAC: in a MAC dialect the TVN slot is sent empty (as \[UT\]
//! terminals do). In the profile's MAC mode `mac.rs` adds the TVN and the MAC before sending.

use protocols::ndc::{CardTrack, TrackKind};
use protocols::ndc::{
    CashHandlerStatus, DeviceState, DeviceStatus, Dialect, DispenseOutcome, EncryptorInit,
    LastTransactionStatus, PinBuffer, ReadyAfterReply, SolicitedStatus, SolicitedStatusInfo,
    TerminalMessage, TerminalState, TransactionRequest, UnsolicitedStatus,
};

use super::cash::Cassettes;

/// Reject reasons the simulator uses (NDC.md section 3), sent as `C` + reason when the dialect
/// has reject reasons, as a plain `A` otherwise.
pub mod reason {
    /// A host message that does not parse, or a command the terminal does not support.
    pub const BAD_COMMAND: &str = "B04";
    /// A transaction reply with a function the terminal cannot perform for this transaction.
    pub const BAD_FUNCTION: &str = "B06";
    /// A transaction reply whose MCN is not the request's.
    pub const BAD_MCN: &str = "B09";
    /// A dispense the cassettes cannot make (no notes, or notes from a missing cassette).
    pub const BAD_DISPENSE_MIX: &str = "B11";
    /// A transaction reply while no request waits for one (late or unsolicited).
    pub const NOT_AWAITING_REPLY: &str = "C01";
    /// Customisation data while in service.
    pub const WRONG_MODE: &str = "C03";
    /// A key load the PIN pad cannot take: it has no master key to decipher it with ("device
    /// not configured").
    pub const NO_MASTER_KEY: &str = "E02";
    /// A transaction reply whose MAC is missing or does not verify (MAC mode).
    pub const MAC: &str = "1";
    /// A transaction reply that does not echo the request's time-variant number (MAC mode).
    pub const TVN: &str = "2";
}

/// `22 … <info>` with the dialect's TVN slot (left empty).
pub fn solicited(luno: &str, info: SolicitedStatusInfo) -> TerminalMessage {
    TerminalMessage::SolicitedStatus(SolicitedStatus::new(luno, info))
}

/// `9`: ready.
pub fn ready(luno: &str) -> TerminalMessage {
    solicited(luno, SolicitedStatusInfo::Ready)
}

/// Ready after a transaction reply: `9`, `B`, or `B FS <tsn>` per the dialect.
pub fn ready_after_reply(luno: &str, dialect: &Dialect, tsn: u16) -> TerminalMessage {
    let info = match dialect.ready_after_reply {
        ReadyAfterReply::Nine => SolicitedStatusInfo::Ready,
        ReadyAfterReply::B => SolicitedStatusInfo::ReadyAfterReply {
            completion: None,
            tsn: None,
            data: None,
        },
        ReadyAfterReply::BWithTsn => SolicitedStatusInfo::ReadyAfterReply {
            completion: None,
            tsn: Some(tsn),
            data: None,
        },
    };
    solicited(luno, info)
}

/// `C` + `reason`, or `A` in a dialect without reject reasons.
pub fn reject(luno: &str, dialect: &Dialect, reason: &str) -> TerminalMessage {
    let info = if dialect.reject_reasons {
        SolicitedStatusInfo::SpecificReject {
            reason: reason.to_owned(),
        }
    } else {
        SolicitedStatusInfo::CommandReject
    };
    solicited(luno, info)
}

/// `23 FS luno FS FS 3 FS <kvv>`: encryptor initialisation data after a new key was loaded, with
/// its key verification value (6 hex digits).
pub fn new_key_verification(luno: &str, kvv: String) -> TerminalMessage {
    TerminalMessage::EncryptorInit(EncryptorInit {
        luno: luno.to_owned(),
        id: "3".to_owned(),
        kvv,
        mac: None,
        extra: Vec::new(),
        trailing_fs: 0,
    })
}

/// `F FS <state>`.
pub fn terminal_state(luno: &str, state: TerminalState) -> TerminalMessage {
    solicited(luno, SolicitedStatusInfo::TerminalState(state))
}

/// The cash handler `E` device status: outcome, notes per type, severity and supplies.
fn cash_handler(
    outcome: DispenseOutcome,
    notes: Vec<u32>,
    cassettes: &Cassettes,
    device_severity: char,
) -> DeviceStatus {
    DeviceStatus {
        state: DeviceState::CashHandler(CashHandlerStatus {
            outcome,
            notes_dispensed: notes,
        }),
        severity: Some(cassettes.severity_field(device_severity)),
        diagnostic: None,
        supplies: Some(cassettes.supplies_field()),
        extra: Vec::new(),
    }
}

/// `22 … 8 FS E<outcome><notes> FS <severity> FS FS <supplies>`: a dispense that went wrong.
/// Empty `notes` sends the outcome without counts (`8 FS E1 FS …`).
pub fn dispense_fault(
    luno: &str,
    outcome: DispenseOutcome,
    notes: Vec<u32>,
    cassettes: &Cassettes,
) -> TerminalMessage {
    let severity = match outcome {
        DispenseOutcome::ShortDispense | DispenseOutcome::Unknown | DispenseOutcome::Retracted => {
            '2'
        }
        _ => '1',
    };
    solicited(
        luno,
        SolicitedStatusInfo::DeviceFault(cash_handler(outcome, notes, cassettes, severity)),
    )
}

/// The receipt printer's device identifier.
pub const RECEIPT_PRINTER_DIG: char = 'G';

/// `22 … 8 FS G1 FS 2 FS FS 1`: a device fault that says nothing about the cash (the receipt
/// printer could not print, warning severity), sent where the dispense's status belongs.
pub fn other_device_fault(luno: &str) -> TerminalMessage {
    solicited(
        luno,
        SolicitedStatusInfo::DeviceFault(DeviceStatus {
            state: DeviceState::Other {
                dig: RECEIPT_PRINTER_DIG,
                status: "1".to_owned(),
            },
            severity: Some("2".to_owned()),
            diagnostic: None,
            supplies: Some("1".to_owned()),
            extra: Vec::new(),
        }),
    )
}

fn unsolicited(luno: &str, device: DeviceStatus) -> TerminalMessage {
    TerminalMessage::UnsolicitedStatus(UnsolicitedStatus {
        luno: luno.to_owned(),
        tvn: None,
        device,
        mac: None,
        trailing_fs: 0,
    })
}

fn bare(state: DeviceState) -> DeviceStatus {
    DeviceStatus {
        state,
        severity: None,
        diagnostic: None,
        supplies: None,
        extra: Vec::new(),
    }
}

/// `12 … B<config id>`: power-up.
pub fn power_up(luno: &str, config_id: &str) -> TerminalMessage {
    unsolicited(
        luno,
        bare(DeviceState::PowerUp {
            config_id: config_id.to_owned(),
        }),
    )
}

/// `12 … P21` / `P20`: supervisor mode entered / left.
pub fn supervisor(luno: &str, entered: bool) -> TerminalMessage {
    unsolicited(luno, bare(DeviceState::Supervisor { entered }))
}

/// `12 … E0<notes of the last dispense> FS <severity> FS FS <supplies>`: supplies changed
/// (a cassette went low or out) after a dispense.
pub fn supplies_report(luno: &str, last_notes: Vec<u32>, cassettes: &Cassettes) -> TerminalMessage {
    unsolicited(
        luno,
        cash_handler(DispenseOutcome::Success, last_notes, cassettes, '0'),
    )
}

/// `;PAN=YYMM101…?`: track 2 as a card reader sends it (service code 101, zero discretionary
/// data, kept within the 39-character limit).
pub fn track2(pan: &str, expiry_yymm: &str) -> CardTrack {
    let used = 1 + pan.len() + 1 + expiry_yymm.len() + 3 + 1;
    let discretionary = "0".repeat(39usize.saturating_sub(used).min(8));
    CardTrack::new(
        TrackKind::Track2,
        format!(";{pan}={expiry_yymm}101{discretionary}?"),
    )
}

/// What a transaction request carries (the card data and PIN are clear: they go on the wire).
pub struct RequestFields<'a> {
    pub luno: &'a str,
    pub mcn: char,
    /// `None`: the transaction request state does not send track 2.
    pub track2: Option<CardTrack>,
    pub operation_code: &'a str,
    /// `None`: the transaction request state does not send the amount.
    pub amount_minor: Option<u64>,
    /// PIN buffer A: the PIN block enciphered under the PIN key; `None` (sent empty) when the
    /// terminal has no PIN key.
    pub pin_buffer: Option<PinBuffer>,
    pub last_txn: Option<LastTransactionStatus>,
}

/// `11`: transaction request.
pub fn transaction_request(f: RequestFields<'_>) -> TerminalMessage {
    TerminalMessage::TransactionRequest(TransactionRequest {
        luno: f.luno.to_owned(),
        tvn: None,
        top_of_receipt: true,
        mcn: f.mcn,
        track2: f.track2,
        track3: None,
        operation_code: f.operation_code.to_owned(),
        amount: f.amount_minor,
        pin_buffer_a: f.pin_buffer,
        buffer_b: String::new(),
        buffer_c: String::new(),
        track1: None,
        last_transaction_status: f.last_txn,
        buffers: Vec::new(),
        mac: None,
        trailing_fs: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track2_fits_in_39_characters_and_parses() {
        for pan in ["476173900101", "4761739001010010", "4761739001010010123"] {
            let t = track2(pan, "3012");
            assert!(t.expose().len() <= 39, "{}", t.expose());
            assert_eq!(t.track2().unwrap().pan().expose(), pan);
        }
    }

    #[test]
    fn reject_follows_the_dialect() {
        let basic = Dialect::basic();
        let adv = Dialect::ncr_advance();
        let a = reject("001", &basic, reason::BAD_MCN)
            .encode(&basic)
            .unwrap();
        assert_eq!(a, b"22\x1c001\x1c\x1cA");
        let c = reject("001000001", &adv, reason::BAD_MCN)
            .encode(&adv)
            .unwrap();
        assert_eq!(c, b"22\x1c001000001\x1c\x1c\x1cC\x1cB09");
    }
}
