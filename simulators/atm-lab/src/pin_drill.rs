//! The PIN drill, after the customers: on one terminal, with a card of its own, three wrong PINs,
//! the right PIN on the blocked card, an operator unblock on the switch's control socket, and
//! the right PIN again.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use atm_sim::{AtmSim, Card, Customer, DeclineReason};
use tokio::time::Instant;

use crate::report::Record;
use crate::traffic::reconnect;

/// The PIN drill, on one terminal with a card of its own: three wrong PINs (55, 55, 75), the
/// right PIN on the blocked card (75), an operator unblock on the switch's control socket, the
/// right PIN (approved). Returns the customers' records and whether every step went as expected.
pub async fn run(
    atm: &mut AtmSim,
    tid: &str,
    card: &Card,
    switch_socket: &Path,
    events: &Mutex<Vec<String>>,
) -> (Vec<Record>, bool) {
    use DeclineReason::{PinTriesExceeded, WrongPin};
    let steps: [(bool, Option<DeclineReason>); 4] = [
        (true, Some(WrongPin)),
        (true, Some(WrongPin)),
        (true, Some(PinTriesExceeded)),
        (false, Some(PinTriesExceeded)),
    ];
    let mut records = Vec::new();
    let mut ok = true;
    let mut seen = Vec::new();
    for (wrong, want) in steps {
        let mut c = Customer::withdrawal(card.pan.clone(), 2_000).with_pin(card.pin.clone());
        if wrong {
            c = c.with_wrong_pin();
        }
        let (got, record) = pin_drill_customer(atm, tid, &c).await;
        ok &= got == want;
        seen.push(drill_step(got));
        records.extend(record);
    }
    let socket = switch_socket.to_owned();
    let pan = card.pan.clone();
    let unblocked = tokio::task::spawn_blocking(move || {
        host_switch::cli::control::send(
            &socket,
            &host_switch::control_api::Request::card_unblock(&pan),
        )
    })
    .await;
    let unblocked = matches!(unblocked, Ok(Ok(_)));
    ok &= unblocked;
    seen.push(
        if unblocked {
            "unblocked"
        } else {
            "UNBLOCK FAILED"
        }
        .to_owned(),
    );
    // The right PIN on the unblocked card. After a ledger drill the switch's breaker may still
    // answer "host unavailable" for a few seconds: the customer tries again, as one would.
    let c = Customer::withdrawal(card.pan.clone(), 2_000).with_pin(card.pin.clone());
    let mut tries = 0;
    let (got, record) = loop {
        let (got, record) = pin_drill_customer(atm, tid, &c).await;
        tries += 1;
        if tries >= 30 || record.as_ref().is_none_or(|r| r.column != "unavail") {
            break (got, record);
        }
        records.extend(record);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let approved = record.as_ref().is_some_and(|r| r.column == "approved");
    ok &= approved && got.is_none();
    seen.push(if approved {
        "approved".to_owned()
    } else {
        drill_step(got)
    });
    records.extend(record);
    events.lock().unwrap().push(format!(
        "pin drill on {tid}: {} -> {}",
        seen.join(", "),
        if ok { "as expected" } else { "NOT AS EXPECTED" }
    ));
    (records, ok)
}

/// One PIN drill step as the table shows it.
fn drill_step(got: Option<DeclineReason>) -> String {
    match got {
        Some(DeclineReason::WrongPin) => "wrong PIN".into(),
        Some(DeclineReason::PinTriesExceeded) => "PIN tries exceeded".into(),
        Some(other) => format!("declined ({other:?})"),
        None => "not declined for the PIN".into(),
    }
}

async fn pin_drill_customer(
    atm: &mut AtmSim,
    tid: &str,
    c: &Customer,
) -> (Option<DeclineReason>, Option<Record>) {
    if !atm.is_connected() {
        reconnect(atm, Duration::from_secs(30)).await;
    }
    let t0 = Instant::now();
    match atm.run_customer(c).await {
        Ok(o) => (
            o.outcome.decline_reason(),
            Some(Record::from_outcome(
                tid,
                &o,
                t0.elapsed().as_millis() as u64,
            )),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "PIN drill customer interrupted");
            (None, None)
        }
    }
}
