//! Property tests for the NDC codec: `parse(encode(m)) == m` for generated messages of every
//! kind in every dialect shape, and parsing never panics on arbitrary, truncated or mutated input
//! (whatever parses re-encodes and reads back the same).

// Wrapped in `mod ndc` so that `cargo test -p protocols ndc` selects these tests.
mod ndc {
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;
    use protocols::ndc::*;

    fn dialects() -> Vec<Dialect> {
        vec![
            Dialect::basic(),
            Dialect::ncr_advance(),
            Dialect {
                cassette_types: 7,
                note_digits: 4,
                amount_len: 8,
                ready_after_reply: ReadyAfterReply::BWithTsn,
                host_response_flag: true,
                tolerate_trailing_fs: false,
                ..Dialect::ncr_advance()
            },
            Dialect {
                tvn: TvnMode::EmptySlot,
                reject_reasons: true,
                last_txn_status: true,
                track1_id: true,
                ..Dialect::basic()
            },
        ]
    }

    fn any_dialect() -> impl Strategy<Value = Dialect> {
        prop::sample::select(dialects())
    }

    /// Short free text: printable, at most 7 characters, so never mistaken for an 8-hex MAC.
    fn short() -> impl Strategy<Value = String> {
        "[ -~]{0,7}"
    }

    /// Mostly the dialect's own length, sometimes the other one or none: real terminals and
    /// hosts send 3 or 9 characters whatever the dialect, and hosts an empty LUNO.
    fn luno(d: &Dialect) -> BoxedStrategy<String> {
        let own = if d.luno_len == 9 {
            "[0-9]{3}[0-9A-Z]{6}".boxed()
        } else {
            "[0-9]{3}".boxed()
        };
        prop_oneof![
            6 => own,
            1 => "[0-9]{3}",
            1 => "[0-9]{3}[0-9A-Z]{6}",
            1 => Just(String::new()),
        ]
        .boxed()
    }

    /// Trailing FS after a message (none most of the time).
    fn trailing() -> impl Strategy<Value = usize> {
        prop_oneof![3 => Just(0usize), 1 => 1..4usize]
    }

    /// Fields after the last known one: short (never an 8-hex MAC), the last one non-empty.
    fn extra() -> BoxedStrategy<Vec<String>> {
        prop_oneof![
            3 => Just(Vec::new()),
            1 => (vec(prop_oneof![Just(String::new()), "[ -~]{1,7}"], 0..2), "[ -~]{1,7}")
                .prop_map(|(mut v, last)| {
                    v.push(last);
                    v
                }),
        ]
        .boxed()
    }

    fn hex8() -> impl Strategy<Value = String> {
        "[0-9A-F]{8}"
    }

    fn tvn(d: &Dialect) -> BoxedStrategy<Option<String>> {
        if d.tvn == TvnMode::Hex8 {
            option::of(hex8()).boxed()
        } else {
            Just(None).boxed()
        }
    }

    fn mac(d: &Dialect) -> BoxedStrategy<Option<String>> {
        if d.mac {
            option::of(hex8()).boxed()
        } else {
            Just(None).boxed()
        }
    }

    fn notes(n: usize, digits: usize) -> impl Strategy<Value = Vec<u32>> {
        vec(0..10u32.pow(digits as u32), n)
    }

    fn id_buffers() -> impl Strategy<Value = Vec<IdBuffer>> {
        vec(
            (
                prop::sample::select(vec!['5', 'U', 'V', 'w', 'a', 'c', 'e', 'K']),
                "[ -~]{0,6}",
            )
                .prop_map(|(id, data)| IdBuffer { id, data }),
            0..3,
        )
    }

    fn host_flag(d: &Dialect) -> BoxedStrategy<Option<char>> {
        // `1`/`2` after class `1` would read as a terminal `11`/`12`.
        let flag = prop::sample::select(vec!['0', '3', '9']);
        if d.host_response_flag {
            flag.prop_map(Some).boxed()
        } else {
            option::of(flag).boxed()
        }
    }

    fn sequence() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[0-9]{3}", hex8()]
    }

    fn transaction_request(d: &Dialect) -> BoxedStrategy<TransactionRequest> {
        let d = d.clone();
        let lts = if d.last_txn_status {
            option::of(
                (
                    0..10_000u16,
                    prop::sample::select(vec![
                        LastStatus::None,
                        LastStatus::Good,
                        LastStatus::Error,
                        LastStatus::ReplyRejected,
                    ]),
                    notes(d.cassette_types, 5),
                    prop_oneof![Just(String::new()), "\x1DCAM\x1D[0-9A-F]{8}"],
                )
                    .prop_map(|(tsn, status, notes_dispensed, tail)| {
                        LastTransactionStatus {
                            tsn,
                            status,
                            notes_dispensed,
                            tail,
                        }
                    }),
            )
            .boxed()
        } else {
            Just(None).boxed()
        };
        let head = (
            luno(&d),
            tvn(&d),
            any::<bool>(),
            prop::char::range(' ', '~'),
            option::of(";[0-9]{16}=[0-9]{10}\\?"),
            option::of("[0-9=]{1,40}"),
            prop_oneof![Just(String::new()), "[A-I ]{8}"],
        );
        let body = (
            option::of(0..10u64.pow(d.amount_len as u32)),
            option::of("[0-9:;<=>?]{16}"),
            short(),
            short(),
            option::of("%B[0-9]{16}\\^[A-Z /]{2,20}\\^[0-9]{4}\\?"),
            lts,
            id_buffers(),
            mac(&d),
            trailing(),
        );
        (head, body)
            .prop_map(
                |(
                    (luno, tvn, top_of_receipt, mcn, t2, t3, operation_code),
                    (amount, pin, buffer_b, buffer_c, t1, lts, buffers, mac, trailing_fs),
                )| TransactionRequest {
                    luno,
                    tvn,
                    top_of_receipt,
                    mcn,
                    track2: t2.map(|t| CardTrack::new(TrackKind::Track2, t)),
                    track3: t3.map(|t| CardTrack::new(TrackKind::Track3, t)),
                    operation_code,
                    amount,
                    pin_buffer_a: pin.map(PinBuffer::new),
                    buffer_b,
                    buffer_c,
                    track1: t1.map(|t| CardTrack::new(TrackKind::Track1, t)),
                    last_transaction_status: lts,
                    buffers,
                    mac,
                    trailing_fs,
                },
            )
            .boxed()
    }

    fn device_status(d: &Dialect) -> BoxedStrategy<DeviceStatus> {
        let outcomes = vec![
            DispenseOutcome::Success,
            DispenseOutcome::ShortDispense,
            DispenseOutcome::NoneDispensed,
            DispenseOutcome::Unknown,
            DispenseOutcome::NoneDispensedCardNotEjected,
            DispenseOutcome::Retracted,
        ];
        let state = prop_oneof![
            "[0-9]{4}".prop_map(|config_id| DeviceState::PowerUp { config_id }),
            (
                prop::sample::select(outcomes),
                prop_oneof![
                    Just(Vec::new()),
                    notes(d.cassette_types, d.note_digits).boxed()
                ]
            )
                .prop_map(|(outcome, notes_dispensed)| DeviceState::CashHandler(
                    CashHandlerStatus {
                        outcome,
                        notes_dispensed
                    }
                )),
            any::<bool>().prop_map(|entered| DeviceState::Supervisor { entered }),
            (
                prop::sample::select(vec!['A', 'C', 'D', 'G', 'H', 'L', 'Q', 'w']),
                "[0-9]{0,6}"
            )
                .prop_map(|(dig, status)| DeviceState::Other { dig, status }),
        ];
        // Severity, diagnostic, supplies, extra: the first k, the last one non-empty.
        let rest = vec("[0-9]{0,7}", 0..6).prop_map(|mut v| {
            if let Some(last) = v.last_mut() {
                if last.is_empty() {
                    last.push('0');
                }
            }
            v
        });
        (state, rest)
            .prop_map(|(state, rest)| {
                let mut it = rest.into_iter();
                DeviceStatus {
                    state,
                    severity: it.next(),
                    diagnostic: it.next(),
                    supplies: it.next(),
                    extra: it.collect(),
                }
            })
            .boxed()
    }

    fn supply_counters(d: &Dialect) -> impl Strategy<Value = SupplyCounters> {
        let n = d.cassette_types;
        (
            (
                0..10_000u16,
                0..10_000_000u32,
                notes(n, 5),
                notes(n, 5),
                notes(n, 5),
                notes(n, 5),
            ),
            (
                0..100_000u32,
                0..100_000u32,
                0..100_000u32,
                0..100_000u32,
                prop_oneof![Just(String::new()), "[g-z]{1,10}"],
            ),
        )
            .prop_map(
                |(
                    (tsn, transaction_count, a, b, c, e),
                    (
                        cards_captured,
                        envelopes_deposited,
                        camera_film_remaining,
                        last_envelope_serial,
                        extra,
                    ),
                )| SupplyCounters {
                    tsn,
                    transaction_count,
                    notes_in_cassettes: a,
                    notes_rejected: b,
                    notes_dispensed: c,
                    last_transaction_notes_dispensed: e,
                    cards_captured,
                    envelopes_deposited,
                    camera_film_remaining,
                    last_envelope_serial,
                    extra,
                },
            )
    }

    fn non_empty_last(v: Vec<String>) -> Vec<String> {
        let mut v = v;
        while v.last().is_some_and(String::is_empty) {
            v.pop();
        }
        v
    }

    fn solicited_info(d: &Dialect) -> BoxedStrategy<SolicitedStatusInfo> {
        let mut choices: Vec<BoxedStrategy<SolicitedStatusInfo>> = vec![
            Just(SolicitedStatusInfo::Ready).boxed(),
            Just(SolicitedStatusInfo::CommandReject).boxed(),
            device_status(d)
                .prop_map(SolicitedStatusInfo::DeviceFault)
                .boxed(),
            "[0-9]{4}"
                .prop_map(|id| {
                    SolicitedStatusInfo::TerminalState(TerminalState::ConfigurationId(id))
                })
                .boxed(),
            supply_counters(d)
                .prop_map(|c| SolicitedStatusInfo::TerminalState(TerminalState::SupplyCounters(c)))
                .boxed(),
            ("[0-9]{4}", vec(short(), 0..6))
                .prop_map(|(config_id, f)| {
                    SolicitedStatusInfo::TerminalState(TerminalState::ConfigurationInfo {
                        config_id,
                        fields: non_empty_last(f),
                    })
                })
                .boxed(),
            ("[HIJKLMN5][ -~]{0,6}", vec(short(), 0..3))
                .prop_map(|(first, rest)| {
                    let mut fields = vec![first];
                    fields.extend(rest);
                    SolicitedStatusInfo::TerminalState(TerminalState::Other {
                        fields: non_empty_last(fields),
                    })
                })
                .boxed(),
        ];
        if d.reject_reasons {
            choices.push(
                "[A-E][0-9]{2}|[1-3]"
                    .prop_map(|reason| SolicitedStatusInfo::SpecificReject { reason })
                    .boxed(),
            );
        }
        match d.ready_after_reply {
            ReadyAfterReply::Nine => {}
            ReadyAfterReply::B => choices.push(
                option::of("CAM\x1D[0-9A-F]{8}")
                    .prop_map(|completion| SolicitedStatusInfo::ReadyAfterReply {
                        completion,
                        tsn: None,
                        data: None,
                    })
                    .boxed(),
            ),
            ReadyAfterReply::BWithTsn => choices.push(
                (
                    option::of("CAM\x1D[0-9A-F]{8}"),
                    option::of((0..10_000u16, option::of("[12][0-9]{2}(\x1D[0-9]{2}){0,3}"))),
                )
                    .prop_map(|(completion, t)| SolicitedStatusInfo::ReadyAfterReply {
                        completion,
                        tsn: t.as_ref().map(|t| t.0),
                        data: t.and_then(|t| t.1),
                    })
                    .boxed(),
            ),
        }
        prop::strategy::Union::new(choices).boxed()
    }

    fn command() -> impl Strategy<Value = Command> {
        let m = || option::of(prop::sample::select(vec!['0', '1', '2']));
        prop_oneof![
            Just(Command::GoInService),
            m().prop_map(|modifier| Command::GoOutOfService { modifier }),
            Just(Command::SendConfigurationId),
            m().prop_map(|modifier| Command::SendSupplyCounters { modifier }),
            "[0-9]{0,3}".prop_map(|data| Command::SendTallyInformation { data }),
            "[0-9]{0,3}".prop_map(|data| Command::SendErrorLogInformation { data }),
            m().prop_map(|modifier| Command::SendConfigurationInformation { modifier }),
            Just(Command::SendDateTime),
            Just(Command::Disconnect),
            Just(Command::NoOp),
            (prop::sample::select(vec!['H', 'K', 'Z', '9']), "[0-9]{0,3}")
                .prop_map(|(code, data)| Command::Other { code, data }),
        ]
    }

    fn data_command_data() -> impl Strategy<Value = DataCommandData> {
        let screen = prop_oneof![
            ("[0-9]{3}", "[ -~\x0C\x0F\x1B]{0,4}")
                .prop_map(|(number, data)| Screen { number, data }),
            ("[A-Z][0-9]{2}", "[ -~]{0,4}").prop_map(|(number, data)| Screen { number, data }),
            ("u[0-9]{4}", "[ -~]{0,2}").prop_map(|(number, data)| Screen { number, data }),
        ];
        let state = ("[0-9]{3}", prop::char::range('A', 'Z'), vec("[0-9]{3}", 8)).prop_map(
            |(number, state_type, e)| State {
                number,
                state_type,
                entries: std::array::from_fn(|k| e[k].clone()),
            },
        );
        let value =
            (0..100u8, 0..1000u16).prop_map(|(number, value)| NumberedValue { number, value });
        prop_oneof![
            vec(screen, 0..4).prop_map(DataCommandData::Screens),
            vec(state, 0..3).prop_map(DataCommandData::States),
            vec("[0-9]{1,7}", 0..3).prop_map(DataCommandData::ConfigurationParameters),
            vec("[0-9]{126}", 0..3).prop_map(DataCommandData::Fits),
            "[0-9]{4}".prop_map(DataCommandData::ConfigurationId),
            ("[0-9]{3}", vec(value.clone(), 0..6), vec(value, 0..6)).prop_map(
                |(luno, options, timers)| DataCommandData::EnhancedConfiguration {
                    luno,
                    options,
                    timers
                }
            ),
            "[0-9]{10}".prop_map(DataCommandData::DateTime),
            (
                prop::sample::select(vec!['3', '4']),
                "[1-5]",
                "030[0-9]{6,12}"
            )
                .prop_map(|(subclass, modifier, data)| DataCommandData::KeyChange {
                    subclass,
                    modifier,
                    data: KeyField::new(data)
                }),
            ("2[0-9]{11}", vec("[ -~]{1,7}", 0..3))
                .prop_map(|(identifier, fields)| DataCommandData::Other { identifier, fields }),
        ]
    }

    fn transaction_reply(d: &Dialect) -> BoxedStrategy<TransactionReply> {
        let n = d.cassette_types;
        let head = (
            host_flag(d),
            luno(d),
            sequence(),
            "[0-9]{3}",
            prop_oneof![Just(Vec::new()), notes(n, d.note_digits).boxed()],
            0..10_000u16,
        );
        let functions = "123456789ABCFPQ*-':".chars().collect::<Vec<_>>();
        let printer = vec(
            (
                prop::sample::select(vec!['0', '1', '2', '3']),
                "[ -~\n]{0,10}",
            )
                .prop_map(|(printer, data)| PrinterData { printer, data }),
            0..3,
        );
        let body = (
            prop::sample::select(functions),
            "[0-9]{3}",
            prop_oneof![
                Just(String::new()),
                "[0-9]{3}\x0C[ -~]{0,10}(\x1D[0-9]{3}[ -~]{0,5})?"
            ],
            prop::char::range(' ', '~'),
            prop::sample::select(vec!['0', '1', '4']),
            printer,
            id_buffers(),
            mac(d),
            trailing(),
        );
        (head, body)
            .prop_map(
                |(
                    (response_flag, luno, sequence, next_state, notes_to_dispense, tsn),
                    (f, screen, screen_update, mcn, card_flag, printer, buffers, mac, trailing_fs),
                )| TransactionReply {
                    response_flag,
                    luno,
                    sequence,
                    next_state,
                    notes_to_dispense,
                    tsn,
                    function: FunctionId::from_code(f),
                    screen,
                    screen_update,
                    mcn,
                    card_flag,
                    printer,
                    buffers,
                    mac,
                    trailing_fs,
                },
            )
            .boxed()
    }

    /// An EJ block as terminals send it: header + CR LF lines, or (rarely) a field without a
    /// header; often with an empty LUNO.
    fn journal_upload(d: &Dialect) -> BoxedStrategy<JournalUpload> {
        let header = option::of(
            (
                "[0-9]{6}",
                "[0-9]{2}(0[1-9]|1[0-2])[0-2][0-9]",
                "[0-2][0-9][0-5][0-9][0-5][0-9]",
                0..=JOURNAL_MAX_CHAR,
                0..=JOURNAL_MAX_CHAR,
                0..1000u32,
            )
                .prop_map(
                    |(machine_number, date, time, previous_last_char, last_char, block_length)| {
                        JournalBlockHeader {
                            machine_number,
                            date,
                            time,
                            previous_last_char,
                            last_char,
                            block_length,
                        }
                    },
                ),
        );
        (
            luno(d),
            header,
            "([ -~]{0,24}\r\n){0,4}",
            extra(),
            mac(d),
            trailing(),
        )
            .prop_map(
                |(luno, header, text, extra, mac, trailing_fs)| JournalUpload {
                    luno,
                    reserved: Default::default(),
                    header,
                    text: JournalText::new(text),
                    extra,
                    mac,
                    trailing_fs,
                },
            )
            .boxed()
    }

    fn journal_ack(d: &Dialect) -> BoxedStrategy<JournalAck> {
        let command = prop_oneof![
            (0..=JOURNAL_MAX_CHAR).prop_map(|last_char| JournalCommand::Acknowledge { last_char }),
            (0..=JOURNAL_MAX_CHAR)
                .prop_map(|last_char| JournalCommand::AcknowledgeAndStop { last_char }),
            "[0-9]{0,10}".prop_map(|options| JournalCommand::Options { options }),
            (
                prop::sample::select(vec!['0', '5', '9', 'A', 'Z']),
                "[ -~]{0,6}"
            )
                .prop_map(|(code, data)| JournalCommand::Other { code, data }),
        ];
        (
            host_flag(d),
            luno(d),
            prop_oneof![Just(String::new()), "[0-9]{3}"],
            command,
            extra(),
            mac(d),
            trailing(),
        )
            .prop_map(
                |(response_flag, luno, sequence, command, extra, mac, trailing_fs)| JournalAck {
                    response_flag,
                    luno,
                    sequence,
                    command,
                    extra,
                    mac,
                    trailing_fs,
                },
            )
            .boxed()
    }

    fn emv_configuration(d: &Dialect) -> BoxedStrategy<EmvConfiguration> {
        (host_flag(d), luno(d), "[1-5]", extra(), mac(d), trailing())
            .prop_map(
                |(response_flag, luno, table_id, records, mac, trailing_fs)| EmvConfiguration {
                    response_flag,
                    luno,
                    table_id,
                    records,
                    mac,
                    trailing_fs,
                },
            )
            .boxed()
    }

    /// A class neither direction knows, with its raw fields (empty ones too).
    fn unknown() -> BoxedStrategy<UnknownMessage> {
        (
            "[579][0-9A-Z]?",
            option::of("[0-9]{0,9}"),
            vec(prop_oneof![Just(String::new()), "[ -~]{1,12}"], 0..5),
        )
            .prop_map(|(class, luno, fields)| UnknownMessage {
                class,
                fields: if luno.is_some() { fields } else { Vec::new() },
                luno,
            })
            .boxed()
    }

    fn message(d: &Dialect) -> BoxedStrategy<NdcMessage> {
        let t = |m| NdcMessage::Terminal(m);
        let h = |m| NdcMessage::Host(m);
        prop_oneof![
            transaction_request(d).prop_map(move |m| t(TerminalMessage::TransactionRequest(m))),
            (luno(d), tvn(d), device_status(d), mac(d), trailing()).prop_map(
                move |(luno, tvn, device, mac, trailing_fs)| t(TerminalMessage::UnsolicitedStatus(
                    UnsolicitedStatus {
                        luno,
                        tvn,
                        device,
                        mac,
                        trailing_fs,
                    }
                ))
            ),
            (
                luno(d),
                if d.tvn == TvnMode::Absent {
                    Just(None).boxed()
                } else {
                    tvn(d)
                },
                solicited_info(d),
                extra(),
                mac(d),
                trailing(),
            )
                .prop_map(move |(luno, tvn, info, extra, mac, trailing_fs)| {
                    // Extra fields follow only a status whose fields are all known (the others
                    // end in an open list that takes them).
                    let closed = matches!(
                        info,
                        SolicitedStatusInfo::Ready
                            | SolicitedStatusInfo::CommandReject
                            | SolicitedStatusInfo::SpecificReject { .. }
                            | SolicitedStatusInfo::TerminalState(
                                TerminalState::ConfigurationId(_)
                                    | TerminalState::SupplyCounters(_)
                            )
                    );
                    t(TerminalMessage::SolicitedStatus(SolicitedStatus {
                        luno,
                        tvn,
                        tvn_slot: None,
                        info,
                        extra: if closed { extra } else { Vec::new() },
                        mac,
                        trailing_fs,
                    }))
                }),
            (
                luno(d),
                "[34]",
                prop_oneof!["[0-9A-F]{6}", "[0-9A-F]{24}"],
                extra(),
                mac(d),
                trailing()
            )
                .prop_map(move |(luno, id, kvv, extra, mac, trailing_fs)| t(
                    TerminalMessage::EncryptorInit(EncryptorInit {
                        luno,
                        id,
                        kvv,
                        extra,
                        mac,
                        trailing_fs
                    })
                )),
            journal_upload(d).prop_map(move |m| t(TerminalMessage::JournalUpload(m))),
            journal_ack(d).prop_map(move |m| h(HostMessage::Journal(m))),
            emv_configuration(d).prop_map(move |m| h(HostMessage::EmvConfiguration(m))),
            unknown().prop_map(NdcMessage::Unknown),
            (
                host_flag(d),
                luno(d),
                prop_oneof![Just(String::new()), "[0-9]{3}"],
                command(),
                extra(),
                mac(d),
                trailing(),
            )
                .prop_map(
                    move |(response_flag, luno, sequence, command, extra, mac, trailing_fs)| h(
                        HostMessage::TerminalCommand(TerminalCommand {
                            response_flag,
                            luno,
                            sequence,
                            command,
                            extra,
                            mac,
                            trailing_fs,
                        })
                    )
                ),
            (
                host_flag(d),
                luno(d),
                prop_oneof![Just(String::new()), "[0-9]{3}"],
                data_command_data(),
                mac(d),
                trailing(),
            )
                .prop_map(
                    move |(response_flag, luno, sequence, data, mac, trailing_fs)| h(
                        HostMessage::DataCommand(DataCommand {
                            response_flag,
                            luno,
                            sequence,
                            data,
                            extra: Vec::new(),
                            mac,
                            trailing_fs,
                        })
                    )
                ),
            transaction_reply(d).prop_map(move |m| h(HostMessage::TransactionReply(m))),
        ]
        .boxed()
    }

    fn dialect_and_message() -> impl Strategy<Value = (Dialect, NdcMessage)> {
        any_dialect().prop_flat_map(|d| (Just(d.clone()), message(&d)))
    }

    /// Whatever parses must re-encode, and the encoding must read back to the same value.
    fn check_parse(bytes: &[u8], d: &Dialect) -> Result<(), TestCaseError> {
        if let Ok(m) = NdcMessage::parse(bytes, d) {
            let again = m
                .encode(d)
                .map_err(|e| TestCaseError::fail(format!("parsed {m:?} but cannot encode: {e}")))?;
            let back = NdcMessage::parse(&again, d).map_err(|e| {
                TestCaseError::fail(format!("re-encoded {again:?} does not parse: {e}"))
            })?;
            prop_assert_eq!(back, m);
        }
        Ok(())
    }

    /// Bytes that look like NDC: a known class, then separators, digits, letters and noise.
    fn ndc_like() -> impl Strategy<Value = Vec<u8>> {
        let class = prop::sample::select(vec![
            &b"11"[..],
            b"12",
            b"22",
            b"23",
            b"1",
            b"10",
            b"3",
            b"30",
            b"4",
            b"40",
            b"61",
            b"6",
            b"8",
            b"80",
            b"99",
            b"",
        ]);
        let alphabet = prop::sample::select(
            b"\x1c\x1c\x1c\x1c\x1d\x1d0123456789ABCDEF:;<=>?E8F9B2 \x0c\xff".to_vec(),
        );
        (class, vec(alphabet, 0..160)).prop_map(|(c, rest)| {
            let mut v = c.to_vec();
            v.push(0x1c);
            v.extend(rest);
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn encode_then_parse_is_identity((d, m) in dialect_and_message()) {
            let bytes = m.encode(&d).map_err(|e| TestCaseError::fail(format!("{e} for {m:?}")))?;
            let back = NdcMessage::parse(&bytes, &d).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&bytes))))?;
            prop_assert_eq!(&back, &m);
            // Decode then encode gives back the same bytes, and decode keeps the typed form.
            prop_assert_eq!(back.encode(&d).ok(), Some(bytes.clone()));
            prop_assert_eq!(NdcMessage::decode(&bytes, &d), m);
        }

        #[test]
        fn decode_then_encode_gives_back_any_bytes(bytes in vec(any::<u8>(), 0..300)) {
            for d in dialects() {
                let m = NdcMessage::decode(&bytes, &d);
                prop_assert_eq!(m.encode(&d).ok(), Some(bytes.clone()), "{:?}", m);
            }
        }

        #[test]
        fn decode_then_encode_gives_back_ndc_like_bytes(bytes in ndc_like()) {
            for d in dialects() {
                let m = NdcMessage::decode(&bytes, &d);
                prop_assert_eq!(m.encode(&d).ok(), Some(bytes.clone()), "{:?}", m);
            }
        }

        #[test]
        fn parse_of_any_bytes_never_panics(bytes in vec(any::<u8>(), 0..300)) {
            for d in dialects() {
                check_parse(&bytes, &d)?;
            }
        }

        #[test]
        fn parse_of_ndc_like_bytes_never_panics(bytes in ndc_like()) {
            for d in dialects() {
                check_parse(&bytes, &d)?;
            }
        }

        #[test]
        fn truncated_and_mutated_messages_never_panic(
            (d, m) in dialect_and_message(),
            cut in any::<prop::sample::Index>(),
            edits in vec((any::<prop::sample::Index>(), prop::sample::select(b"\x1c\x1d09AF:? E\x00\xff".to_vec())), 1..4),
        ) {
            let bytes = m.encode(&d).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for n in [cut.index(bytes.len() + 1), bytes.len().saturating_sub(1)] {
                check_parse(bytes.get(..n).unwrap_or(&bytes), &d)?;
            }
            let mut mutated = bytes.clone();
            for (at, b) in &edits {
                let i = at.index(mutated.len().max(1));
                if let Some(slot) = mutated.get_mut(i) {
                    *slot = *b;
                }
            }
            check_parse(&mutated, &d)?;
            let mut inserted = bytes;
            inserted.insert(cut.index(inserted.len() + 1), edits[0].1);
            check_parse(&inserted, &d)?;
        }
    }
}
