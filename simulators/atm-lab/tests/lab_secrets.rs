//! An audit of a whole lab run for card and key material where it must never be.
//!
//! The lab runs with PIN security (custodian key entry, terminal PIN keys over NDC, zone PIN key
//! exchange, PIN verification, wrong PINs, the tries-exceeded / unblock drill) and with every log at
//! debug level: the switch's and the agent's (child processes, their stderr kept in files) and this
//! process's (ledger-sim, the terminal simulators, the lab itself). Then every log line, the
//! switch's journal, the agent's queue and both key-store files are searched for:
//! - every clear key and key component the run made (terminal master keys, zone master key, PIN
//!   verification key, both KEKs, each terminal PIN key as its terminal holds it, the zone PIN key
//!   read back from the agent's store with its KEK): raw bytes and hex;
//! - every PIN block the run could have made (each card, the other bank's included, × its right
//!   and wrong PIN): clear ISO 9564 format 0, enciphered under each terminal PIN key (raw, hex,
//!   and the NDC `:;<=>?` form) and under the zone PIN keys — ours and the bank host's (raw, hex);
//! - clear PINs next to a `pin` label;
//! - unmasked card numbers (and so track 2, which starts with one);
//! - legacy card references (an unkeyed SHA-256 of the card number: `card-…`), which must no
//!   longer be made anywhere;
//! - a card reference (`cref-…`) beside a masked card number: on the same log line, or within
//!   a record's reach (256 bytes) in the stores, since the two together let anyone holding the
//!   reference key test the 10^5 candidates; without it the reference is only an opaque token.
//!
//! Every file the run left is read raw (sled files included): the logs, the switch's journal and
//! card store, the agent's queue, state and card vault (sealed), the ledger's books, both key
//! stores, the configurations and the issuer's cards file. Not searched: the KEK files themselves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atm_lab::{self as lab, LabOptions, Scenario};
use protocols::ndc::PinBuffer;
use protocols::types::Pan;
use testkit::evidence::CapturedLogs;

/// One thing that must not appear, and how to name it in a failure (never the value).
struct Needle {
    label: String,
    bytes: Vec<u8>,
    /// Compare ASCII case-insensitively (hex).
    fold_case: bool,
}

fn needles_for_bytes(out: &mut Vec<Needle>, label: &str, bytes: &[u8]) {
    out.push(Needle {
        label: format!("{label} (raw)"),
        bytes: bytes.to_vec(),
        fold_case: false,
    });
    out.push(Needle {
        label: format!("{label} (hex)"),
        bytes: hex::encode(bytes).into_bytes(),
        fold_case: true,
    });
}

fn wrong(pin: &str) -> String {
    pin.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}

/// The zone PIN keys in the agent's store, unwrapped with its KEK (the store's documented format:
/// AES key wrap of a 16-byte header followed by the key).
fn zone_pin_keys(store: &Path, kek_hex: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(store).expect("agent key store");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let kek = keystore::Kek::from_hex(kek_hex).unwrap();
    json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "zpk")
        .map(|k| {
            let wrapped = hex::decode(k["wrapped"].as_str().unwrap()).unwrap();
            let clear = keystore::crypto::aes_key_unwrap(kek.expose(), &wrapped).unwrap();
            clear[16..].to_vec()
        })
        .collect()
}

fn find(hay: &[u8], needle: &Needle) -> bool {
    if needle.bytes.is_empty() || hay.len() < needle.bytes.len() {
        return false;
    }
    if needle.fold_case {
        let n = needle.bytes.to_ascii_lowercase();
        hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(&n))
    } else {
        hay.windows(needle.bytes.len()).any(|w| w == needle.bytes)
    }
}

/// Whether a `cref-` reference sits beside an occurrence of `masked`: on the same line in a log,
/// within 256 bytes either side elsewhere.
fn reference_beside(hay: &[u8], masked: &[u8], is_log: bool) -> bool {
    const REACH: usize = 256;
    let mut at = 0;
    while let Some(i) = hay[at..]
        .windows(masked.len())
        .position(|w| w == masked)
        .map(|i| i + at)
    {
        let (start, end) = if is_log {
            let start = hay[..i]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let end = hay[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(hay.len(), |p| i + p);
            (start, end)
        } else {
            (
                i.saturating_sub(REACH),
                (i + masked.len() + REACH).min(hay.len()),
            )
        };
        if hay[start..end].windows(5).any(|w| w == b"cref-") {
            return true;
        }
        at = i + masked.len();
    }
    false
}

/// The lab's KEK files (`*kek*`): the keys that open the stores, searched for everywhere else.
fn is_kek_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("kek"))
}

fn files_under(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_file() {
        out.push(p.to_owned());
    } else if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            files_under(&e.path(), out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pin_key_or_card_number_in_any_log_journal_or_queue() {
    let captured = CapturedLogs::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let audit = tempfile::tempdir().unwrap();
    let mut opts = LabOptions::new(env!("CARGO_BIN_EXE_atm-lab"));
    opts.atms = 2;
    opts.customers = 60;
    // The link to the switch is cut a few times: deposits are taken offline and their card
    // numbers wait in the agent's vault until they are advised.
    opts.scenario = Scenario::LinkFlap;
    opts.progress = false;
    opts.think = Duration::from_millis(5);
    opts.pins = true;
    opts.audit = Some((audit.path().to_owned(), "debug".into()));
    let (report, secrets) = lab::run_audited(&opts).await.expect("lab run");
    assert!(report.reconciled, "{}", report.table());
    assert_eq!(report.pin_drill_ok, Some(true), "{}", report.table());
    assert!(report.wrong_pin >= 2 && report.pin_tries_exceeded >= 2);

    // What must not appear.
    let mut needles = Vec::new();
    for (label, key) in &secrets.keys {
        needles_for_bytes(&mut needles, label, key);
    }
    let mut zpks = zone_pin_keys(&secrets.agent_key_store, &secrets.agent_kek);
    assert!(!zpks.is_empty(), "the agent holds a zone PIN key");
    // The bank host's zone PIN key: the switch translates the bank cards' PIN blocks to it.
    let bank_zpk: Vec<Vec<u8>> = secrets
        .keys
        .iter()
        .filter(|(l, _)| l == lab::bank::BANK_ZPK_NAME)
        .map(|(_, k)| k.to_vec())
        .collect();
    assert_eq!(bank_zpk.len(), 1, "the bank host has its own zone PIN key");
    assert!(report.bank_customers > 0, "{}", report.table());
    zpks.extend(bank_zpk);
    for (i, k) in zpks.iter().enumerate() {
        needles_for_bytes(&mut needles, &format!("zone PIN key #{i}"), k);
    }
    let tpks: Vec<&[u8]> = secrets
        .keys
        .iter()
        .filter(|(l, _)| l.starts_with("tpk/"))
        .map(|(_, k)| k.as_slice())
        .collect();
    assert_eq!(tpks.len(), 2, "each terminal holds a PIN key");
    for (n, (pan_text, pin)) in secrets.cards.iter().enumerate() {
        let pan = Pan::parse(pan_text).unwrap();
        needles.push(Needle {
            label: format!("card {n} number"),
            bytes: pan_text.as_bytes().to_vec(),
            fold_case: false,
        });
        for (which, p) in [("right", pin.clone()), ("wrong", wrong(pin))] {
            let clear = keystore::crypto::pin_block_format0(&p, &pan).unwrap();
            needles_for_bytes(
                &mut needles,
                &format!("card {n} {which} clear PIN block"),
                &*clear,
            );
            for label in ["pin=", "pin: ", "\"pin\":\"", "pin=\"", "pin: \""] {
                needles.push(Needle {
                    label: format!("card {n} {which} clear PIN after {label:?}"),
                    bytes: format!("{label}{p}").into_bytes(),
                    fold_case: true,
                });
            }
            for (t, tpk) in tpks.iter().enumerate() {
                let block = keystore::crypto::encrypt_pin(tpk, &p, &pan).unwrap();
                let what = format!("card {n} {which} PIN block under terminal {t}'s PIN key");
                needles_for_bytes(&mut needles, &what, &block.0);
                needles.push(Needle {
                    label: format!("{what} (NDC form)"),
                    bytes: PinBuffer::from_bytes(&block.0).expose().as_bytes().to_vec(),
                    fold_case: false,
                });
            }
            for (z, zpk) in zpks.iter().enumerate() {
                let block = keystore::crypto::encrypt_pin(zpk, &p, &pan).unwrap();
                needles_for_bytes(
                    &mut needles,
                    &format!("card {n} {which} PIN block under zone PIN key #{z}"),
                    &block.0,
                );
            }
        }
    }

    // The legacy, unkeyed references of the run's cards, and their masked numbers.
    let mut masked = Vec::new();
    for (n, (pan_text, _)) in secrets.cards.iter().enumerate() {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(pan_text.as_bytes());
        needles.push(Needle {
            label: format!("card {n} legacy (unkeyed) reference"),
            bytes: format!("card-{}", hex::encode(&digest[..12])).into_bytes(),
            fold_case: false,
        });
        masked.push(Pan::parse(pan_text).unwrap().masked().into_bytes());
    }

    // Where to look: every file the run left but the KEKs.
    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    let mut files = Vec::new();
    files_under(&secrets.dir, &mut files);
    files.retain(|f| !is_kek_file(f));
    for f in [
        &secrets.logs,
        &secrets.switch_journal,
        &secrets.agent_dir,
        &secrets.agent_key_store,
    ] {
        assert!(
            f.starts_with(&secrets.dir),
            "{} is inside the lab directory",
            f.display()
        );
    }
    assert!(
        files
            .iter()
            .any(|f| f.starts_with(secrets.agent_dir.join("state"))
                || f.starts_with(&secrets.agent_dir) && f.to_string_lossy().contains("state")),
        "the agent's state database (with its card vault) is searched: {files:?}"
    );
    for f in &files {
        haystacks.push((f.display().to_string(), std::fs::read(f).unwrap()));
    }
    haystacks.push(("this process's log".into(), captured.bytes()));

    // The audit looked at real material: debug logs of both daemons, with masked card numbers.
    let logs: Vec<&(String, Vec<u8>)> = haystacks
        .iter()
        .filter(|(n, _)| n.ends_with(".log") || n.starts_with("this process"))
        .collect();
    assert_eq!(logs.len(), 3, "switch, agent and lab logs");
    for (name, bytes) in &logs {
        let text = String::from_utf8_lossy(bytes);
        assert!(text.contains("DEBUG"), "{name} has debug lines");
        assert!(text.contains("******"), "{name} shows masked card numbers");
    }
    let agent_log = logs
        .iter()
        .find(|(n, _)| n.ends_with("agent.log"))
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    assert!(
        agent_log.contains("deposit taken offline"),
        "the run stored deposits in the agent's vault (the link cuts came too late?)"
    );
    let total: usize = haystacks.iter().map(|(_, b)| b.len()).sum();
    assert!(total > 100_000, "only {total} bytes to search");

    let mut findings = Vec::new();
    for (name, hay) in &haystacks {
        for n in &needles {
            if find(hay, n) {
                findings.push(format!("{}: {name}", n.label));
            }
        }
        let is_log = name.ends_with(".log") || name.starts_with("this process");
        for (n, m) in masked.iter().enumerate() {
            if reference_beside(hay, m, is_log) {
                findings.push(format!(
                    "a card reference beside card {n}'s masked number: {name}"
                ));
            }
        }
    }
    assert!(
        findings.is_empty(),
        "secret material found ({} needles over {} bytes):\n{}",
        needles.len(),
        total,
        findings.join("\n")
    );
    eprintln!(
        "audit: {} needles, {} files + this process's log, {} bytes, nothing found",
        needles.len(),
        files.len(),
        total
    );
}

#[test]
fn the_search_finds_what_it_looks_for() {
    let mut needles = Vec::new();
    needles_for_bytes(&mut needles, "k", &[0xAB, 0xCD, 0x01, 0x23]);
    assert!(find(b"xx abcd0123 yy", &needles[1]));
    assert!(find(b"xx ABCD0123 yy", &needles[1]));
    assert!(find(&[9, 0xAB, 0xCD, 0x01, 0x23, 9], &needles[0]));
    assert!(!find(b"abcd012", &needles[1]));
    assert_eq!(wrong("1909"), "2010");

    let m = b"476173******0010";
    assert!(reference_beside(
        b"a 476173******0010 b cref-0a1b\n",
        m,
        true
    ));
    assert!(!reference_beside(
        b"a 476173******0010 b\nc cref-0a1b\n",
        m,
        true
    ));
    assert!(reference_beside(
        b"cref-0a1b\x00\x01476173******0010",
        m,
        false
    ));
    let far = [b"cref-0a1b".as_slice(), &[0u8; 300], m].concat();
    assert!(!reference_beside(&far, m, false));
    assert!(is_kek_file(Path::new("/x/agent-kek")) && !is_kek_file(Path::new("/x/agent.toml")));
}
