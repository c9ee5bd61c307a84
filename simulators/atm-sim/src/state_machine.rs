//! The terminal's state machine: runs the state table the host downloaded, state by state, as an
//! NDC terminal does, from the keys a customer presses.
//!
//! Opt-in (`AtmOptions::state_table`, `atm-sim --state-table`); without it the simulator scripts
//! its requests from the customer's kind and amount. Starting at state `000`:
//! - `A` card read: the card's track 2 goes into the track buffer → good-read next state;
//! - `K` FIT switch: → the entry of the card's institution (this simulator matches every card to
//!   the first FIT, index 0);
//! - `B` PIN entry: the customer types the card's PIN (it goes through the PIN pad as before) →
//!   remote PIN check next state; `Cancel` → cancel next state;
//! - `D` preset operation code buffer: clear mask, then the `A`-`D` preset masks (bit n =
//!   position n) → next state;
//! - `E` four-FDK selection: an active FDK (`A`-`D`, next state not `255`) stores its letter in
//!   the operation code buffer position the state names (`008`+: none) → that FDK's next state;
//! - `X` FDK information entry: an FDK in the active mask stores its value from the extension
//!   (`Z`) state into the buffer the state names (`01n` buffer B, `02n` buffer C, `03n` amount;
//!   `n` zeros appended) → FDK next state;
//! - `W` FDK switch: → the entry of the last FDK pressed;
//! - `F` amount entry: digits fill the amount buffer; an active FDK (or `Enter`, which this
//!   simulator takes as FDK `A`) ends it → that FDK's next state;
//! - `I` transaction request: the request is built from the buffers, sending what the state's
//!   flags say (track 2, operation code, amount, PIN buffer A);
//! - `J` close: the customer is done (a close before `I`: no request).
//!
//! `Cancel` in a state that takes keys goes to its cancel next state. Any other state type, a
//! missing state, a key the state cannot take or a customer out of keys stops the customer with
//! a [`FlowError`] that names the state. Pure: no I/O.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use protocols::ndc::State;

/// At most this many states per customer: a table that loops is stopped, not followed forever.
pub const MAX_STATES_PER_CUSTOMER: usize = 64;

/// A key on the terminal's keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Key {
    /// A function display key, `A`-`D` left of the screen, `F`-`I` right.
    Fdk(char),
    Digit(u8),
    Enter,
    Cancel,
}

impl Key {
    /// Keys from words separated by spaces: `A`-`I` an FDK, a run of digits each digit, `ENTER`,
    /// `CANCEL` (any case): `"A D 7000 ENTER"`.
    pub fn parse_script(script: &str) -> Result<Vec<Key>, String> {
        let mut keys = Vec::new();
        for word in script.split_whitespace() {
            let upper = word.to_ascii_uppercase();
            match upper.as_str() {
                "ENTER" => keys.push(Key::Enter),
                "CANCEL" => keys.push(Key::Cancel),
                w if w.len() == 1 && FDKS.contains(w.chars().next().unwrap_or(' ')) => {
                    keys.extend(w.chars().map(Key::Fdk))
                }
                w if w.bytes().all(|b| b.is_ascii_digit()) => {
                    keys.extend(w.bytes().map(|b| Key::Digit(b - b'0')))
                }
                _ => {
                    return Err(format!(
                        "{word:?} is not a key (A-I, digits, ENTER, CANCEL)"
                    ))
                }
            }
        }
        Ok(keys)
    }

    /// The digits of `amount_minor` followed by `Enter`.
    pub fn amount(amount_minor: u64) -> Vec<Key> {
        let mut keys: Vec<Key> = amount_minor
            .to_string()
            .bytes()
            .map(|b| Key::Digit(b - b'0'))
            .collect();
        keys.push(Key::Enter);
        keys
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Fdk(c) => write!(f, "FDK {c}"),
            Key::Digit(d) => write!(f, "{d}"),
            Key::Enter => f.write_str("ENTER"),
            Key::Cancel => f.write_str("CANCEL"),
        }
    }
}

/// The FDKs in the order state entries and masks list them.
const FDKS: &str = "ABCDFGHI";

/// Why the state machine stopped a customer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("no state table loaded: the host downloaded no states")]
    NoStates,
    #[error("state {0} is not in the state table")]
    MissingState(String),
    #[error("state {state} has type {state_type:?}, which this simulator does not execute")]
    UnsupportedType { state: String, state_type: char },
    #[error("state {state} waits for a key and the customer has none left")]
    OutOfKeys { state: String },
    #[error("state {state} ({state_type}) cannot take {key}")]
    UnexpectedKey {
        state: String,
        state_type: char,
        key: Key,
    },
    #[error("state {state}: entry {entry} is {value:?}, not what the state type needs")]
    BadEntry {
        state: String,
        entry: usize,
        value: String,
    },
    #[error("state {state}: the amount buffer holds more digits than the dialect sends")]
    AmountTooLong { state: String },
    #[error("the customer went through {0} states without reaching a transaction request or a close: the table loops")]
    Loop(usize),
}

/// The buffers the states fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffers {
    /// The card was read (track 2 in the track buffer).
    pub card_read: bool,
    /// The customer entered the PIN (it goes into PIN buffer A through the PIN pad).
    pub pin_entered: bool,
    pub operation_code: [u8; 8],
    /// Digits, as entered.
    pub amount: String,
    pub buffer_b: String,
    pub buffer_c: String,
}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            card_read: false,
            pin_entered: false,
            operation_code: [b' '; 8],
            amount: String::new(),
            buffer_b: String::new(),
            buffer_c: String::new(),
        }
    }
}

impl Buffers {
    pub fn operation_code(&self) -> String {
        String::from_utf8_lossy(&self.operation_code).into_owned()
    }

    pub fn amount_minor(&self) -> u64 {
        self.amount.parse().unwrap_or(0)
    }
}

/// What the transaction request state sends (its flags, entries 3-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPlan {
    /// The `I` state.
    pub state: String,
    pub send_track2: bool,
    pub send_operation_code: bool,
    pub send_amount: bool,
    pub send_pin: bool,
    pub buffers: Buffers,
}

/// Where a customer's keys led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowEnd {
    /// A transaction request state: send the `11`.
    Request(RequestPlan),
    /// A close state before any request (the customer cancelled, or a timeout exit).
    Closed { state: String },
}

/// A run of the state table: the states passed through and the screens shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowTrace {
    pub states: Vec<String>,
    pub screens: Vec<String>,
}

/// The state table and one customer's progress through it.
pub struct StateMachine<'a> {
    states: &'a BTreeMap<String, State>,
    amount_len: usize,
    pub buffers: Buffers,
    pub trace: FlowTrace,
    last_fdk: Option<char>,
}

impl<'a> StateMachine<'a> {
    /// `amount_len`: the digits the amount field carries (the dialect's 8 or 12).
    pub fn new(states: &'a BTreeMap<String, State>, amount_len: usize) -> Self {
        Self {
            states,
            amount_len,
            buffers: Buffers::default(),
            trace: FlowTrace::default(),
            last_fdk: None,
        }
    }

    /// Runs from state `000` with `keys` until a transaction request or a close state.
    pub fn run_customer(&mut self, keys: &mut VecDeque<Key>) -> Result<FlowEnd, FlowError> {
        if self.states.is_empty() {
            return Err(FlowError::NoStates);
        }
        self.buffers = Buffers::default();
        self.last_fdk = None;
        let mut number = "000".to_owned();
        for _ in 0..MAX_STATES_PER_CUSTOMER {
            let state = self.state(&number)?;
            self.trace.states.push(number.clone());
            number = match self.step(state, keys)? {
                Step::Next(n) => n,
                Step::End(end) => return Ok(end),
            };
        }
        Err(FlowError::Loop(MAX_STATES_PER_CUSTOMER))
    }

    /// The host's reply named `next`: follows it to the close state; returns the close state.
    pub fn after_reply(&mut self, next: &str) -> Result<String, FlowError> {
        let mut number = next.to_owned();
        let mut none = VecDeque::new();
        for _ in 0..MAX_STATES_PER_CUSTOMER {
            let state = self.state(&number)?;
            self.trace.states.push(number.clone());
            number = match self.step(state, &mut none)? {
                Step::Next(n) => n,
                Step::End(FlowEnd::Closed { state }) => return Ok(state),
                Step::End(FlowEnd::Request(plan)) => return Ok(plan.state),
            };
        }
        Err(FlowError::Loop(MAX_STATES_PER_CUSTOMER))
    }

    fn state(&self, number: &str) -> Result<&'a State, FlowError> {
        self.states
            .get(number)
            .ok_or_else(|| FlowError::MissingState(number.to_owned()))
    }

    fn show(&mut self, screen: &str) {
        if screen != "000" {
            self.trace.screens.push(screen.to_owned());
        }
    }

    fn step(&mut self, s: &State, keys: &mut VecDeque<Key>) -> Result<Step, FlowError> {
        let e = |i: usize| s.entries[i - 1].as_str();
        let next = |i: usize| Step::Next(e(i).to_owned());
        match s.state_type {
            'A' => {
                self.show(e(1));
                self.buffers.card_read = true;
                Ok(next(2))
            }
            'K' => Ok(next(1)),
            'B' => {
                self.show(e(1));
                if keys.front() == Some(&Key::Cancel) {
                    keys.pop_front();
                    return Ok(next(3));
                }
                self.buffers.pin_entered = true;
                Ok(next(7))
            }
            'D' => {
                let clear = self.mask(s, 2)?;
                for (i, b) in self.buffers.operation_code.iter_mut().enumerate() {
                    if clear & (1 << i) == 0 {
                        *b = b' ';
                    }
                }
                for (k, letter) in "ABCD".bytes().enumerate() {
                    let preset = self.mask(s, 3 + k)?;
                    for (i, b) in self.buffers.operation_code.iter_mut().enumerate() {
                        if preset & (1 << i) != 0 {
                            *b = letter;
                        }
                    }
                }
                Ok(next(1))
            }
            'E' => {
                self.show(e(1));
                let key = self.key(s, keys)?;
                let fdk = match key {
                    Key::Cancel => return Ok(next(3)),
                    Key::Fdk(c @ 'A'..='D') if e(4 + fdk_index(c)) != "255" => c,
                    other => return Err(unexpected(s, other)),
                };
                let position = self.number(s, 8)?;
                if let Some(b) = self.buffers.operation_code.get_mut(position) {
                    *b = fdk as u8;
                }
                self.last_fdk = Some(fdk);
                Ok(next(4 + fdk_index(fdk)))
            }
            'X' => {
                self.show(e(1));
                let active = self.mask(s, 7)?;
                let fdk = match self.key(s, keys)? {
                    Key::Cancel => return Ok(next(3)),
                    Key::Fdk(c) if active & (1 << fdk_index(c)) != 0 => c,
                    other => return Err(unexpected(s, other)),
                };
                let ext = self.state(e(5))?;
                let value = ext.entries[fdk_index(fdk)].clone();
                let id = self.number(s, 6)?;
                let stored = format!("{value}{}", "0".repeat(id % 10));
                match id / 10 {
                    1 => self.buffers.buffer_b = stored,
                    2 => self.buffers.buffer_c = stored,
                    3 => {
                        let digits = stored.trim_start_matches('0');
                        if digits.len() > self.amount_len {
                            return Err(FlowError::AmountTooLong {
                                state: s.number.clone(),
                            });
                        }
                        self.buffers.amount = digits.to_owned();
                    }
                    _ => return Err(bad_entry(s, 6)),
                }
                self.last_fdk = Some(fdk);
                Ok(next(4))
            }
            'W' => {
                let fdk = self.last_fdk.ok_or_else(|| FlowError::OutOfKeys {
                    state: s.number.clone(),
                })?;
                Ok(next(1 + fdk_index(fdk)))
            }
            'F' => self.amount_entry(s, keys),
            'I' => {
                self.show(e(1));
                let flag = |i: usize| e(i) != "000";
                Ok(Step::End(FlowEnd::Request(RequestPlan {
                    state: s.number.clone(),
                    send_track2: flag(3),
                    send_operation_code: flag(5),
                    send_amount: flag(6),
                    send_pin: flag(7),
                    buffers: self.buffers.clone(),
                })))
            }
            'J' => {
                self.show(e(1));
                Ok(Step::End(FlowEnd::Closed {
                    state: s.number.clone(),
                }))
            }
            other => Err(FlowError::UnsupportedType {
                state: s.number.clone(),
                state_type: other,
            }),
        }
    }

    /// `F`: digits into the amount buffer until an FDK (or `Enter`, as FDK `A`).
    fn amount_entry(&mut self, s: &State, keys: &mut VecDeque<Key>) -> Result<Step, FlowError> {
        let e = |i: usize| s.entries[i - 1].as_str();
        self.show(e(1));
        self.buffers.amount.clear();
        loop {
            let fdk = match self.key(s, keys)? {
                Key::Digit(d) => {
                    if self.buffers.amount.len() >= self.amount_len {
                        return Err(FlowError::AmountTooLong {
                            state: s.number.clone(),
                        });
                    }
                    self.buffers.amount.push(char::from(b'0' + d % 10));
                    continue;
                }
                Key::Cancel => return Ok(Step::Next(e(3).to_owned())),
                Key::Enter => 'A',
                Key::Fdk(c @ 'A'..='D') => c,
                other => return Err(unexpected(s, other)),
            };
            let n = e(4 + fdk_index(fdk));
            if n == "255" {
                return Err(unexpected(s, Key::Fdk(fdk)));
            }
            self.last_fdk = Some(fdk);
            return Ok(Step::Next(n.to_owned()));
        }
    }

    fn key(&self, s: &State, keys: &mut VecDeque<Key>) -> Result<Key, FlowError> {
        keys.pop_front().ok_or_else(|| FlowError::OutOfKeys {
            state: s.number.clone(),
        })
    }

    fn number(&self, s: &State, entry: usize) -> Result<usize, FlowError> {
        s.entries[entry - 1]
            .parse()
            .map_err(|_| bad_entry(s, entry))
    }

    fn mask(&self, s: &State, entry: usize) -> Result<u32, FlowError> {
        s.entries[entry - 1]
            .parse()
            .map_err(|_| bad_entry(s, entry))
    }
}

enum Step {
    Next(String),
    End(FlowEnd),
}

/// 0 for `A` … 3 for `D`, 4 for `F` … 7 for `I` (the order of entries and mask bits).
fn fdk_index(fdk: char) -> usize {
    FDKS.find(fdk).unwrap_or(0)
}

fn unexpected(s: &State, key: Key) -> FlowError {
    FlowError::UnexpectedKey {
        state: s.number.clone(),
        state_type: s.state_type,
        key,
    }
}

fn bad_entry(s: &State, entry: usize) -> FlowError {
    FlowError::BadEntry {
        state: s.number.clone(),
        entry,
        value: s.entries[entry - 1].clone(),
    }
}

/// The states of a table in its download form (28-character records).
pub fn parse_states<'s>(records: impl IntoIterator<Item = &'s str>) -> BTreeMap<String, State> {
    records
        .into_iter()
        .filter(|r| r.len() == 28 && r.is_ascii())
        .map(|r| {
            let state = State {
                number: r[0..3].to_owned(),
                state_type: r[3..4].chars().next().unwrap_or(' '),
                entries: std::array::from_fn(|k| r[4 + 3 * k..7 + 3 * k].to_owned()),
            };
            (state.number.clone(), state)
        })
        .collect()
}

/// Keys that lead through `states` to a transaction request with `operation_code` and
/// `amount_minor` (0: no amount entered), found by trying the keys each state can take
/// (FDKs, then the amount typed and `Enter`); `None` if no short sequence does. What a random
/// customer presses in state-table mode.
pub fn keys_for(
    states: &BTreeMap<String, State>,
    amount_len: usize,
    operation_code: &str,
    amount_minor: u64,
) -> Option<Vec<Key>> {
    const MAX_CHOICES: usize = 6;
    let mut tries: Vec<Vec<Vec<Key>>> = vec![Vec::new()];
    let mut budget = 4096usize;
    while let Some(choices) = tries.pop() {
        budget = budget.checked_sub(1)?;
        let flat: Vec<Key> = choices.iter().flatten().copied().collect();
        let mut keys: VecDeque<Key> = flat.iter().copied().collect();
        let mut m = StateMachine::new(states, amount_len);
        match m.run_customer(&mut keys) {
            Ok(FlowEnd::Request(plan))
                if keys.is_empty()
                    && plan.buffers.operation_code() == operation_code
                    && plan.buffers.amount_minor() == amount_minor =>
            {
                return Some(flat);
            }
            Err(FlowError::OutOfKeys { state }) if choices.len() < MAX_CHOICES => {
                let kind = states.get(&state).map(|s| s.state_type);
                let mut options: Vec<Vec<Key>> =
                    FDKS.chars().rev().map(|c| vec![Key::Fdk(c)]).collect();
                if kind == Some('F') {
                    options.push(Key::amount(amount_minor));
                }
                for o in options {
                    let mut next = choices.clone();
                    next.push(o);
                    tries.push(next);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[&str] = &[
        "000A001041064002002002001041",
        "041K050050050050050050050050",
        "050B002127127060127000060003",
        "060E003127127070100090255000",
        "070X004127127075071032015000",
        "071Z020050100000000000000000",
        "075W100100100080127127127127",
        "080F005127127100100100127006",
        "090F007127127100100100127006",
        "100I008127001000001001001000",
        "125J076000076078000000000000",
        "127J077000077078000000000000",
    ];

    fn run(table: &[&str], script: &str) -> (Result<FlowEnd, FlowError>, FlowTrace) {
        let states = parse_states(table.iter().copied());
        let mut keys: VecDeque<Key> = Key::parse_script(script).unwrap().into();
        let mut m = StateMachine::new(&states, 12);
        let end = m.run_customer(&mut keys);
        (end, m.trace)
    }

    fn plan(end: Result<FlowEnd, FlowError>) -> RequestPlan {
        match end {
            Ok(FlowEnd::Request(p)) => p,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn card_read_and_pin_entry_fill_the_track_and_pin_buffers() {
        let (end, trace) = run(TABLE, "B");
        let p = plan(end);
        assert!(p.buffers.card_read && p.buffers.pin_entered);
        assert_eq!(trace.states, ["000", "041", "050", "060", "100"]);
        assert_eq!(trace.screens, ["001", "002", "003", "008"]);
    }

    #[test]
    fn four_fdk_selection_stores_the_letter_where_the_state_says() {
        let p = plan(run(TABLE, "B").0);
        assert_eq!(p.buffers.operation_code(), "B       ");
        let moved = TABLE
            .iter()
            .map(|s| {
                s.replace(
                    "060E003127127070100090255000",
                    "060E003127127070100090255003",
                )
            })
            .collect::<Vec<_>>();
        let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
        assert_eq!(
            plan(run(&moved, "B").0).buffers.operation_code(),
            "   B    "
        );
        // FDK D is inactive (255).
        assert!(matches!(
            run(TABLE, "D").0,
            Err(FlowError::UnexpectedKey { ref state, .. }) if state == "060"
        ));
    }

    #[test]
    fn fdk_information_entry_stores_a_fixed_amount_and_the_switch_follows_the_fdk() {
        let (end, trace) = run(TABLE, "A C");
        let p = plan(end);
        assert_eq!(p.buffers.operation_code(), "A       ");
        assert_eq!(p.buffers.amount_minor(), 10_000);
        assert_eq!(
            trace.states,
            ["000", "041", "050", "060", "070", "075", "100"]
        );
    }

    #[test]
    fn amount_entry_takes_digits_until_an_fdk_or_enter() {
        let p = plan(run(TABLE, "A D 7000 ENTER").0);
        assert_eq!(p.buffers.amount_minor(), 7000);
        let p = plan(run(TABLE, "C 12345 B").0);
        assert_eq!(
            (
                p.buffers.operation_code().as_str(),
                p.buffers.amount_minor()
            ),
            ("C       ", 12345)
        );
        let (end, _) = run(TABLE, "C 1234567890123");
        assert!(
            matches!(end, Err(FlowError::AmountTooLong { .. })),
            "{end:?}"
        );
    }

    #[test]
    fn transaction_request_state_says_what_is_sent() {
        let p = plan(run(TABLE, "A A").0);
        assert!(p.send_track2 && p.send_operation_code && p.send_amount && p.send_pin);
        assert_eq!(p.state, "100");
        let quiet: Vec<String> = TABLE
            .iter()
            .map(|s| {
                s.replace(
                    "100I008127001000001001001000",
                    "100I008127001000001000000000",
                )
            })
            .collect();
        let quiet: Vec<&str> = quiet.iter().map(String::as_str).collect();
        let p = plan(run(&quiet, "B").0);
        assert!(p.send_operation_code && !p.send_amount && !p.send_pin);
    }

    #[test]
    fn cancel_leads_to_the_close_state_without_a_request() {
        let (end, trace) = run(TABLE, "CANCEL");
        assert_eq!(
            end,
            Ok(FlowEnd::Closed {
                state: "127".into()
            })
        );
        assert_eq!(trace.states.last().map(String::as_str), Some("127"));
        assert_eq!(
            run(TABLE, "A D 50 CANCEL").0,
            Ok(FlowEnd::Closed {
                state: "127".into()
            })
        );
    }

    #[test]
    fn close_state_after_the_reply() {
        let states = parse_states(TABLE.iter().copied());
        let mut m = StateMachine::new(&states, 12);
        assert_eq!(m.after_reply("125"), Ok("125".to_owned()));
        assert_eq!(m.trace.screens, ["076"]);
        assert_eq!(
            m.after_reply("126"),
            Err(FlowError::MissingState("126".into()))
        );
    }

    #[test]
    fn preset_operation_code_state_sets_positions_by_mask() {
        let table = [
            "000A001010064002002002001010",
            "010D020000001000004000000000",
            "020I008127001000001001001000",
        ];
        let p = plan(run(&table, "").0);
        assert_eq!(p.buffers.operation_code(), "A C     ");
    }

    #[test]
    fn unknown_state_types_and_missing_states_stop_the_customer() {
        let mut table = TABLE.to_vec();
        table[3] = "060Y003127127070071000015000";
        let (end, _) = run(&table, "A");
        let err = end.unwrap_err();
        assert_eq!(
            err,
            FlowError::UnsupportedType {
                state: "060".into(),
                state_type: 'Y'
            }
        );
        assert!(err.to_string().contains("060"), "{err}");
        assert!(err.to_string().contains("'Y'"), "{err}");
        let (end, _) = run(&TABLE[..2], "A");
        assert_eq!(end, Err(FlowError::MissingState("050".into())));
        assert_eq!(run(&[], "A").0, Err(FlowError::NoStates));
        assert_eq!(
            run(TABLE, "").0,
            Err(FlowError::OutOfKeys {
                state: "060".into()
            })
        );
        let looping = ["000A001000064002002002001000"];
        assert_eq!(
            run(&looping, "").0,
            Err(FlowError::Loop(MAX_STATES_PER_CUSTOMER))
        );
    }

    #[test]
    fn keys_are_found_for_every_transaction_of_the_table() {
        let states = parse_states(TABLE.iter().copied());
        let find = |code: &str, amount| keys_for(&states, 12, code, amount);
        assert_eq!(find("B       ", 0), Some(vec![Key::Fdk('B')]));
        assert_eq!(
            find("A       ", 5000),
            Some(vec![Key::Fdk('A'), Key::Fdk('B')])
        );
        let other = find("A       ", 7000).unwrap();
        assert_eq!(other[..2], [Key::Fdk('A'), Key::Fdk('D')]);
        assert_eq!(find("C       ", 4200).unwrap()[0], Key::Fdk('C'), "deposit");
        assert_eq!(find("Z       ", 0), None);
    }

    #[test]
    fn key_scripts_parse() {
        assert_eq!(
            Key::parse_script("a d 70 enter Cancel").unwrap(),
            vec![
                Key::Fdk('A'),
                Key::Fdk('D'),
                Key::Digit(7),
                Key::Digit(0),
                Key::Enter,
                Key::Cancel
            ]
        );
        assert!(Key::parse_script("E").is_err());
        assert!(Key::parse_script("X1").is_err());
    }
}
