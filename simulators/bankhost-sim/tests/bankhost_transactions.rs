//! Card transactions over a real socket: what the host answers and what its books then say.

mod support;

use std::time::Duration;

use bankhost_sim::{Fate, Position, Rule, RuleAction};
use protocols::dialect::Balances;
use protocols::framing::LengthPrefix;
use protocols::iso8583::Spec;
use protocols::types::{Currency, Pan};
use support::*;

fn pan(s: &str) -> Pan {
    Pan::parse(s).unwrap()
}

#[tokio::test]
async fn withdrawal_holds_and_partial_completion_debits_the_dispensed_amount() {
    let host = host().await;
    let h = host.handle();
    let mut c = Client::connect(host.addr()).await;

    let auth = withdrawal(PAN, 6_000, 1);
    let answer = c.call(&auth).await;
    assert_eq!(answer.mti().as_str(), "0110");
    assert_eq!(code(&answer), "00");
    assert_eq!(answer.get_str(38).map(str::len), Some(6), "approval code");
    for n in [2, 3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49] {
        assert_eq!(answer.get(n), auth.get(n), "field {n} echoed");
    }
    assert_eq!(h.position(&pan(PAN)).held, 6_000);
    assert_eq!(h.account(&pan(PAN)).unwrap().available_minor, 4_000);

    // Only 40.00 was dispensed: the advice carries it in field 95.
    let advice = follow_up("0220", &auth, Some(4_000), 2);
    let answer = c.call(&advice).await;
    assert_eq!((answer.mti().as_str(), code(&answer)), ("0230", "00"));
    assert_eq!(answer.get(90), advice.get(90), "field 90 echoed");
    // The repeat is acknowledged and applied once.
    let answer = c.call(&follow_up("0221", &auth, Some(4_000), 2)).await;
    assert_eq!((answer.mti().as_str(), code(&answer)), ("0230", "00"));

    assert_eq!(
        h.position(&pan(PAN)),
        Position {
            held: 0,
            debited: 4_000,
            credited: 0,
            net: -4_000,
            reversed: 0
        }
    );
    let view = h.account(&pan(PAN)).unwrap();
    assert_eq!((view.ledger_minor, view.available_minor), (6_000, 6_000));
    assert_eq!(h.totals().completions_applied, 1);
    assert_eq!(h.totals().repeats_ignored, 1);
    host.shutdown().await;
}

#[tokio::test]
async fn completion_without_field_95_debits_field_4() {
    let host = host().await;
    let h = host.handle();
    let mut c = Client::connect(host.addr()).await;
    let auth = withdrawal(PAN, 2_500, 7);
    assert_eq!(code(&c.call(&auth).await), "00");
    assert_eq!(
        code(&c.call(&follow_up("0220", &auth, None, 8)).await),
        "00"
    );
    assert_eq!(h.position(&pan(PAN)).debited, 2_500);
    assert_eq!(h.position(&pan(PAN)).held, 0);
    host.shutdown().await;
}

#[tokio::test]
async fn lost_approval_reversed_with_repeats_nets_to_zero_with_one_effect() {
    let host = host().await;
    let h = host.handle();
    h.push_rule(
        Rule::new(RuleAction::DropAnswer)
            .named("lose approvals")
            .processing_code("01"),
    )
    .unwrap();
    let mut c = Client::connect(host.addr()).await;

    let auth = withdrawal(PAN, 5_000, 11);
    c.send(&auth).await;
    wait_until("the withdrawal to be applied", || {
        h.position(&pan(PAN)).held == 5_000
    })
    .await;
    assert!(
        c.recv_within(Duration::from_millis(200)).await.is_none(),
        "the approval is lost"
    );
    let record = h.received();
    assert_eq!(record[0].fate, Fate::AnswerDropped);
    assert_eq!(record[0].rule.as_deref(), Some("lose approvals"));
    assert_eq!(record[0].response_code.as_deref(), Some("00"));

    // The switch times out and reverses; it does not see the first acknowledgement either.
    h.drop_next_answers(Some(PAN), 1);
    c.send(&follow_up("0420", &auth, None, 12)).await;
    assert!(c.recv_within(Duration::from_millis(200)).await.is_none());
    for _ in 0..2 {
        let answer = c.call(&follow_up("0421", &auth, None, 12)).await;
        assert_eq!((answer.mti().as_str(), code(&answer)), ("0430", "00"));
    }

    let record = h.received();
    let repeats = record.iter().filter(|e| e.mti.as_str() == "0421").count();
    assert_eq!(repeats, 2);
    assert_eq!(
        record.iter().filter(|e| e.mti.as_str() == "0420").count(),
        1
    );
    assert_eq!(
        h.position(&pan(PAN)),
        Position {
            reversed: 5_000,
            ..Position::default()
        }
    );
    let totals = h.totals();
    assert_eq!(totals.position.net, 0);
    assert_eq!(totals.reversals_applied, 1);
    assert_eq!(totals.repeats_ignored, 2);
    assert_eq!(h.stats().answers_dropped, 2);
    assert_eq!(h.stats().received_by_mti["0421"], 2);
    host.shutdown().await;
}

#[tokio::test]
async fn reversal_before_its_original_is_acknowledged_and_the_late_original_declined_94() {
    let host = host().await;
    let h = host.handle();
    let mut c = Client::connect(host.addr()).await;
    let auth = withdrawal(PAN, 1_000, 21);
    let answer = c.call(&follow_up("0420", &auth, None, 22)).await;
    assert_eq!(code(&answer), "00");
    assert_eq!(h.totals().reversals_unmatched, 1);
    assert_eq!(code(&c.call(&auth).await), "94");
    assert_eq!(h.position(&pan(PAN)), Position::default());
    host.shutdown().await;
}

#[tokio::test]
async fn financial_withdrawal_partially_reversed_keeps_the_actual_amount() {
    let host = host().await;
    let h = host.handle();
    let mut c = Client::connect(host.addr()).await;
    let debit = request("0200", PAN, "011000", Some(3_000), 31);
    let answer = c.call(&debit).await;
    assert_eq!((answer.mti().as_str(), code(&answer)), ("0210", "00"));
    assert_eq!(h.position(&pan(PAN)).debited, 3_000);
    assert_eq!(
        code(&c.call(&follow_up("0420", &debit, Some(1_000), 32)).await),
        "00"
    );
    let p = h.position(&pan(PAN));
    assert_eq!((p.debited, p.reversed, p.net), (1_000, 2_000, -1_000));
    host.shutdown().await;
}

#[tokio::test]
async fn declines_by_rule_amount_and_unknown_card() {
    let host = host().await;
    let h = host.handle();
    h.push_rule(
        Rule::new(RuleAction::Decline("61".into()))
            .card_prefix("541333")
            .amount_range(Some(5_001), None),
    )
    .unwrap();
    h.push_rule(Rule::new(RuleAction::Decline("62".into())).card_prefix(OTHER_PAN))
        .unwrap();
    let mut c = Client::connect(host.addr()).await;

    assert_eq!(code(&c.call(&withdrawal(PAN, 5_001, 41)).await), "61");
    assert_eq!(code(&c.call(&withdrawal(PAN, 5_000, 42)).await), "00");
    assert_eq!(code(&c.call(&withdrawal(OTHER_PAN, 100, 43)).await), "62");
    let answer = c.call(&withdrawal("4761739001010010", 100, 44)).await;
    assert_eq!(code(&answer), "14", "unknown card");
    assert!(answer.get(38).is_none(), "no approval code on a decline");

    // A rule's decline is remembered: its reversal changes nothing, its repeat is declined alike.
    let declined = withdrawal(PAN, 9_000, 45);
    assert_eq!(code(&c.call(&declined).await), "61");
    h.clear_rules();
    assert_eq!(code(&c.call(&declined).await), "61");
    assert_eq!(
        code(&c.call(&follow_up("0420", &declined, None, 46)).await),
        "00"
    );
    assert_eq!(h.position(&pan(PAN)).held, 5_000);
    assert_eq!(h.totals().declined, 4);
    host.shutdown().await;
}

#[tokio::test]
async fn insufficient_funds_is_51_and_holds_count_against_available() {
    let host = host().await;
    let mut c = Client::connect(host.addr()).await;
    assert_eq!(code(&c.call(&withdrawal(OTHER_PAN, 2_001, 51)).await), "51");
    assert_eq!(code(&c.call(&withdrawal(OTHER_PAN, 1_500, 52)).await), "00");
    assert_eq!(code(&c.call(&withdrawal(OTHER_PAN, 501, 53)).await), "51");
    assert_eq!(code(&c.call(&withdrawal(OTHER_PAN, 500, 54)).await), "00");
    assert_eq!(host.handle().stats().answered_by_code["51"], 2);
    host.shutdown().await;
}

#[tokio::test]
async fn balance_inquiry_answers_ledger_and_available_in_field_54() {
    let host = host().await;
    let mut c = Client::connect(host.addr()).await;
    assert_eq!(code(&c.call(&withdrawal(PAN, 1_000, 61)).await), "00");
    let answer = c.call(&request("0100", PAN, "311000", None, 62)).await;
    assert_eq!(code(&answer), "00");
    let amounts = answer.additional_amounts().unwrap().expect("field 54");
    assert_eq!(
        Balances::from_additional_amounts(&amounts),
        Some(Balances {
            currency: Currency::EUR,
            ledger_minor: 10_000,
            available_minor: 9_000,
        })
    );
    // Written exactly as the switch writes it to the agent.
    let mut expected = protocols::iso8583::Message::new("0110").unwrap();
    expected
        .set_additional_amounts(
            &Balances {
                currency: Currency::EUR,
                ledger_minor: 10_000,
                available_minor: 9_000,
            }
            .to_additional_amounts(),
        )
        .unwrap();
    assert_eq!(answer.get(54), expected.get(54));
    host.shutdown().await;
}

#[tokio::test]
async fn deposits_credit_at_once_and_reverse() {
    let host = host().await;
    let h = host.handle();
    let mut c = Client::connect(host.addr()).await;
    let deposit = request("0200", PAN, "210010", Some(7_000), 71);
    let answer = c.call(&deposit).await;
    assert_eq!((answer.mti().as_str(), code(&answer)), ("0210", "00"));
    assert_eq!(h.position(&pan(PAN)).credited, 7_000);
    assert_eq!(h.account(&pan(PAN)).unwrap().available_minor, 17_000);
    assert_eq!(
        code(&c.call(&follow_up("0420", &deposit, None, 72)).await),
        "00"
    );
    assert_eq!(h.position(&pan(PAN)).net, 0);
    host.shutdown().await;
}

#[tokio::test]
async fn deposits_off_are_declined_57() {
    let host = host_with(|c| c.deposits = false).await;
    let mut c = Client::connect(host.addr()).await;
    let answer = c
        .call(&request("0200", PAN, "210010", Some(7_000), 81))
        .await;
    assert_eq!(code(&answer), "57");
    assert_eq!(host.handle().position(&pan(PAN)), Position::default());
    host.shutdown().await;
}

#[tokio::test]
async fn pin_is_checked_under_the_zone_pin_key() {
    let host = host_with(|c| c.zpk_hex = Some(ZPK.into())).await;
    let zpk = bankhost_sim::pin::Zpk::from_hex(ZPK).unwrap();
    let mut c = Client::connect(host.addr()).await;

    let mut right = withdrawal(PAN, 1_000, 91);
    right
        .set(52, zpk.encrypt("1234", &pan(PAN)).unwrap())
        .unwrap();
    assert_eq!(code(&c.call(&right).await), "00");

    let mut wrong = withdrawal(PAN, 1_000, 92);
    wrong
        .set(52, zpk.encrypt("9999", &pan(PAN)).unwrap())
        .unwrap();
    assert_eq!(code(&c.call(&wrong).await), "55");

    // A request without field 52 is not checked.
    assert_eq!(code(&c.call(&withdrawal(PAN, 1_000, 93)).await), "00");
    assert_eq!(host.handle().position(&pan(PAN)).held, 2_000);
    host.shutdown().await;
}

#[tokio::test]
async fn ascii_dialect_with_ascii_length_and_hex_pin_block() {
    let host = host_with(|c| {
        c.spec = bankhost_sim::SpecChoice::Builtin("iso87-ascii".into());
        c.length_prefix = LengthPrefix::Ascii4;
        c.zpk_hex = Some(ZPK.into());
    })
    .await;
    let zpk = bankhost_sim::pin::Zpk::from_hex(ZPK).unwrap();
    let mut c = Client::connect_with(host.addr(), Spec::iso87_ascii(), LengthPrefix::Ascii4).await;
    let mut m = withdrawal(PAN, 1_000, 101);
    let block = hex::encode_upper(zpk.encrypt("1234", &pan(PAN)).unwrap());
    m.set_str(52, &block).unwrap();
    assert_eq!(code(&c.call(&m).await), "00");
    let mut m = withdrawal(PAN, 1_000, 102);
    let block = hex::encode_upper(zpk.encrypt("4321", &pan(PAN)).unwrap());
    m.set_str(52, &block).unwrap();
    assert_eq!(code(&c.call(&m).await), "55");
    host.shutdown().await;
}

#[tokio::test]
async fn a_repeated_original_is_answered_alike_and_applied_once() {
    let host = host().await;
    let h = host.handle();
    let mut c = Client::connect(host.addr()).await;
    let auth = withdrawal(PAN, 1_000, 111);
    let first = c.call(&auth).await;
    let second = c.call(&auth).await;
    assert_eq!(code(&second), "00");
    assert_eq!(first.get(38), second.get(38), "same approval code");
    assert_eq!(h.position(&pan(PAN)).held, 1_000);
    host.shutdown().await;
}

#[tokio::test]
async fn unsupported_requests_are_12_and_missing_fields_30() {
    let host = host().await;
    let mut c = Client::connect(host.addr()).await;
    let answer = c
        .call(&request("0100", PAN, "401000", Some(100), 121))
        .await;
    assert_eq!(code(&answer), "12", "transfer not supported");
    let mut no_stan = withdrawal(PAN, 100, 122);
    no_stan.remove(11);
    assert_eq!(code(&c.call(&no_stan).await), "30");
    let mut file_update = protocols::iso8583::Message::new("0300").unwrap();
    file_update.set_str(11, "000123").unwrap();
    file_update.set_str(41, TERMINAL).unwrap();
    let answer = c.call(&file_update).await;
    assert_eq!((answer.mti().as_str(), code(&answer)), ("0310", "12"));
    host.shutdown().await;
}
