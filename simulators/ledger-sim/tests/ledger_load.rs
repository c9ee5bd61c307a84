//! A bounded burst of concurrent withdrawals: every one is answered, nothing is posted twice and
//! the books balance. Prints the rate it reached (a debug build is several times slower).

mod ledger_support;

use std::sync::Arc;
use std::time::Instant;

use ledger_support::Ledger;
use reqwest::StatusCode;
use serde_json::json;

const ACCOUNTS: usize = 16;
const WITHDRAWALS_PER_ACCOUNT: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_withdrawal_burst_keeps_the_books_balanced() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::start(dir.path()).await);
    for a in 0..ACCOUNTS {
        let open = ledger
            .post("/admin/accounts", json!({"account": format!("acct-{a}"), "currency": "EUR", "balance_minor": 1_000_000}))
            .await;
        assert_eq!(open.status, StatusCode::CREATED);
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..ACCOUNTS {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for w in 0..WITHDRAWALS_PER_ACCOUNT {
                let key = format!("acct-{a}:{w}");
                let hold = ledger.hold(&key, &format!("acct-{a}"), 1_000).await;
                assert_eq!(hold.status, StatusCode::CREATED, "{hold:?}");
                let id = hold.body["hold_id"].as_str().unwrap().to_owned();
                let settled = if w % 4 == 0 {
                    ledger.void(&id, &format!("{key}:void")).await
                } else {
                    ledger.capture(&id, &format!("{key}:capture"), 900).await
                };
                assert_eq!(settled.status, StatusCode::OK, "{settled:?}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let requests = ACCOUNTS * WITHDRAWALS_PER_ACCOUNT * 2;
    let elapsed = started.elapsed();
    println!(
        "{requests} requests from {ACCOUNTS} clients in {elapsed:?}: {:.0} requests/s",
        requests as f64 / elapsed.as_secs_f64()
    );

    let captures_per_account =
        (WITHDRAWALS_PER_ACCOUNT - WITHDRAWALS_PER_ACCOUNT.div_ceil(4)) as i64;
    for a in 0..ACCOUNTS {
        let left = 1_000_000 - 900 * captures_per_account;
        assert_eq!(ledger.balance(&format!("acct-{a}")).await, (left, 0, left));
    }
    let ledger = Arc::into_inner(ledger).expect("tasks done");
    ledger.finish().await;
}
