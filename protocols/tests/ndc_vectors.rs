//! NDC test vectors: the public example messages of NDC.md section 9 (each parsed with the
//! dialect of the terminal that sent it, and encoded back byte for byte), plus messages we build.

// Wrapped in `mod ndc` so that `cargo test -p protocols ndc` selects these tests.
mod ndc {
    use protocols::ndc::*;

    fn adv() -> Dialect {
        Dialect::ncr_advance()
    }
    fn basic() -> Dialect {
        Dialect::basic()
    }

    /// Parses with `d`, checks the encoding gives the same bytes back, returns the message.
    fn canonical(bytes: &[u8], d: &Dialect) -> NdcMessage {
        let m = NdcMessage::parse(bytes, d)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(bytes)));
        assert_eq!(m.encode(d).unwrap(), bytes, "re-encoding {m:?}");
        m
    }

    fn terminal(m: NdcMessage) -> TerminalMessage {
        match m {
            NdcMessage::Terminal(t) => t,
            other => panic!("expected a terminal message, got {other:?}"),
        }
    }
    fn host(m: NdcMessage) -> HostMessage {
        match m {
            NdcMessage::Host(h) => h,
            other => panic!("expected a host message, got {other:?}"),
        }
    }

    const UT_11: &[u8] = b"11\x1C001000001\x1C\x1C01A468E4\x1C14\x1C;502265400089000092=2708620951?\x1C\x1C DA   AD\x1C000000010000\x1C84163:=3395289;7\x1C\x1C\x1C\x1C21641100000000000000000000\x1DCAM\x1D9B026000\x1CU\x1C5CAM00008C159F0206...5F2403270831\x1C766A0E2F";

    #[test]
    fn ut_withdrawal_request_parses_every_field() {
        let TerminalMessage::TransactionRequest(r) = terminal(canonical(UT_11, &adv())) else {
            panic!()
        };
        assert_eq!(r.luno, "001000001");
        assert_eq!(r.tvn.as_deref(), Some("01A468E4"));
        assert!(r.top_of_receipt);
        assert_eq!(r.mcn, '4');
        assert_eq!(r.card().unwrap().pan().expose(), "502265400089000092");
        assert_eq!(r.track3, None);
        assert_eq!(r.operation_code, " DA   AD");
        assert_eq!(r.amount, Some(10_000));
        assert_eq!(
            r.pin_buffer_a.as_ref().unwrap().to_hex_digits().as_deref(),
            Some("84163AD3395289B7")
        );
        assert_eq!((r.buffer_b.as_str(), r.buffer_c.as_str()), ("", ""));
        assert_eq!(r.track1, None);
        let lts = r.last_transaction_status.as_ref().unwrap();
        assert_eq!((lts.tsn, lts.status), (1641, LastStatus::Good));
        assert_eq!(lts.notes_dispensed, vec![0, 0, 0, 0]);
        assert_eq!(lts.tail, "\x1DCAM\x1D9B026000");
        assert_eq!(r.buffers.len(), 2);
        assert_eq!((r.buffers[0].id, r.buffers[0].data.as_str()), ('U', ""));
        assert_eq!(r.buffers[1].id, '5');
        assert!(r.buffers[1].data.starts_with("CAM"));
        assert_eq!(r.mac.as_deref(), Some("766A0E2F"));
    }

    #[test]
    fn ut_next_request_reports_one_note_of_type_3_dispensed() {
        let msg = b"11\x1C001000001\x1C\x1C\x1C14\x1C\x1C\x1C\x1C\x1C\x1C\x1C\x1C\x1C21642100000000000000100000";
        let TerminalMessage::TransactionRequest(r) = terminal(canonical(msg, &adv())) else {
            panic!()
        };
        let lts = r.last_transaction_status.unwrap();
        assert_eq!(
            (lts.tsn, lts.status, lts.notes_dispensed),
            (1642, LastStatus::Good, vec![0, 0, 1, 0])
        );
    }

    #[test]
    fn ea_request_parses_with_basic_dialect() {
        let ea = b"11\x1C777\x1C\x1C\x1C1?\x1C\x1C\x1CBA BA BA\x1C000000001337\x1C;>:>:=>:>:>:>:>:\x1C19671994\x1C1337\x1C%B1234567890123445^PADILLA/L.                ^99011X100000*000000000XXX000000?\x1C";
        let m = NdcMessage::parse(ea, &basic()).unwrap();
        // [EA] ends with a trailing FS: kept, so the same bytes go back out.
        assert_eq!(m.encode(&basic()).unwrap(), ea);
        let TerminalMessage::TransactionRequest(r) = terminal(m) else {
            panic!()
        };
        assert_eq!((r.luno.as_str(), r.mcn, r.tvn.clone()), ("777", '?', None));
        assert_eq!(r.trailing_fs, 1);
        assert_eq!(r.track2, None);
        assert_eq!(r.operation_code, "BA BA BA");
        assert_eq!(r.amount, Some(1337));
        assert_eq!(
            r.pin_buffer_a.unwrap().to_hex_digits().as_deref(),
            Some("BEAEADEAEAEAEAEA")
        );
        assert_eq!(
            (r.buffer_b.as_str(), r.buffer_c.as_str()),
            ("19671994", "1337")
        );
        assert!(r
            .track1
            .unwrap()
            .expose()
            .starts_with("%B1234567890123445^PADILLA"));
    }

    #[test]
    fn ut_transaction_reply_dispenses_one_note_of_type_3() {
        let msg = b"4\x1C001000001\x1C01A468E4\x1C125\x1C00000100\x1C1642A068012\x0C\x0FEETRANSACTION COMPLETED\x0FFEPLEASE GET YOUR CARD\x1C401\n *****START*****...\x1C5CAM910ADA317DE32A94362030308A023030\x1C06E356AF";
        let HostMessage::TransactionReply(r) = host(canonical(msg, &adv())) else {
            panic!()
        };
        assert_eq!(
            (r.response_flag, r.sequence.as_str(), r.next_state.as_str()),
            (None, "01A468E4", "125")
        );
        assert_eq!(r.notes_to_dispense, vec![0, 0, 1, 0]);
        assert_eq!(
            (r.tsn, r.function, r.screen.as_str()),
            (1642, FunctionId::EjectCardDispenseAndPrint, "068")
        );
        assert!(r.function.dispenses());
        assert!(r.screen_update.starts_with("012\x0C\x0FEETRANSACTION"));
        assert_eq!((r.mcn, r.card_flag), ('4', '0'));
        assert_eq!(
            r.printer,
            vec![PrinterData {
                printer: '1',
                data: "\n *****START*****...".into()
            }]
        );
        assert_eq!(r.buffers[0].id, '5');
        assert_eq!(r.mac.as_deref(), Some("06E356AF"));
    }

    #[test]
    fn np_reply_without_cash_parses() {
        let HostMessage::TransactionReply(r) = host(canonical(
            b"40\x1c000\x1c\x1c133\x1c\x1c07759064\x1c200",
            &basic(),
        )) else {
            panic!()
        };
        assert_eq!(r.response_flag, Some('0'));
        assert!(r.notes_to_dispense.is_empty());
        assert_eq!(
            (r.tsn, r.function, r.screen.as_str()),
            (775, FunctionId::DisplayAndPrint { code: '9' }, "064")
        );
        assert_eq!((r.mcn, r.card_flag), ('2', '0'));
        assert_eq!(
            r.printer,
            vec![PrinterData {
                printer: '0',
                data: String::new()
            }]
        );
    }

    #[test]
    fn ut_solicited_ready_messages() {
        let SolicitedStatusInfo::ReadyAfterReply {
            completion,
            tsn,
            data,
        } = solicited(b"22\x1C001000001\x1C\x1C\x1CB\x1DCAM\x1D9B026000", &adv())
        else {
            panic!()
        };
        assert_eq!(
            (completion.as_deref(), tsn, data),
            (Some("CAM\x1D9B026000"), None, None)
        );
        assert_eq!(
            solicited(b"22\x1C001000001\x1C\x1C\x1C9", &adv()),
            SolicitedStatusInfo::Ready
        );
    }

    fn solicited(bytes: &[u8], d: &Dialect) -> SolicitedStatusInfo {
        match terminal(canonical(bytes, d)) {
            TerminalMessage::SolicitedStatus(s) => s.info,
            other => panic!("{other:?}"),
        }
    }

    fn unsolicited(bytes: &[u8], d: &Dialect) -> DeviceStatus {
        match terminal(canonical(bytes, d)) {
            TerminalMessage::UnsolicitedStatus(s) => s.device,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ut_unsolicited_cash_handler_and_power_up() {
        let dev = unsolicited(
            b"12\x1C001000001\x1C\x1CE000000100\x1C04224\x1C0301080400000000\x1C13220",
            &adv(),
        );
        assert_eq!(
            dev.state,
            DeviceState::CashHandler(CashHandlerStatus {
                outcome: DispenseOutcome::Success,
                notes_dispensed: vec![0, 0, 1, 0]
            })
        );
        assert_eq!(dev.severity.as_deref(), Some("04224"));
        assert_eq!(dev.diagnostic.as_deref(), Some("0301080400000000"));
        assert_eq!(dev.supplies.as_deref(), Some("13220"));
        let dev = unsolicited(b"12\x1C001000001\x1C\x1CB0022", &adv());
        assert_eq!(
            dev.state,
            DeviceState::PowerUp {
                config_id: "0022".into()
            }
        );
        assert_eq!(dev.severity, None);
    }

    #[test]
    fn other_devices_and_supervisor_mode() {
        let d = basic();
        let dev = unsolicited(b"12\x1C000\x1C\x1CD1\x1C0\x1C0006000000\x1C0", &d);
        assert_eq!(
            dev.state,
            DeviceState::Other {
                dig: 'D',
                status: "1".into()
            }
        );
        let dev = unsolicited(b"12\x1C000\x1C\x1CG0\x1C0\x1C0042000000\x1C2111", &d);
        assert_eq!(dev.supplies.as_deref(), Some("2111"));
        assert_eq!(
            unsolicited(b"12\x1C000\x1C\x1CP21", &d).state,
            DeviceState::Supervisor { entered: true }
        );
        assert_eq!(
            unsolicited(b"12\x1C000\x1C\x1CP20", &d).state,
            DeviceState::Supervisor { entered: false }
        );
    }

    #[test]
    fn ut_device_faults_give_notes_actually_dispensed() {
        let SolicitedStatusInfo::DeviceFault(dev) = solicited(
            b"22\x1C000\x1C\x1C8\x1CE100040000\x1C00100\x1C\x1C10300",
            &basic(),
        ) else {
            panic!()
        };
        let DeviceState::CashHandler(c) = dev.state else {
            panic!()
        };
        assert_eq!(
            (c.outcome, c.notes_dispensed),
            (DispenseOutcome::ShortDispense, vec![0, 4, 0, 0])
        );
        assert_eq!(
            (
                dev.severity.as_deref(),
                dev.diagnostic.as_deref(),
                dev.supplies.as_deref()
            ),
            (Some("00100"), Some(""), Some("10300"))
        );

        let SolicitedStatusInfo::DeviceFault(dev) = solicited(
            b"22\x1C000\x1C\x1C8\x1CE500020000\x1C00000\x1C24050000000000\x1C10000",
            &basic(),
        ) else {
            panic!()
        };
        let DeviceState::CashHandler(c) = dev.state else {
            panic!()
        };
        assert_eq!(
            (c.outcome, c.notes_dispensed),
            (DispenseOutcome::Retracted, vec![0, 2, 0, 0])
        );
        assert_eq!(dev.diagnostic.as_deref(), Some("24050000000000"));
    }

    #[test]
    fn ut_supply_counters() {
        let msg = b"22\x1C001000001\x1C\x1C01A46906\x1CF\x1C2000000036800002000000000110000000008000150002700000000000000100008000000000000000000000000000000000000000000000\x1CDE4C1C36";
        let m = terminal(canonical(msg, &adv()));
        let TerminalMessage::SolicitedStatus(s) = m else {
            panic!()
        };
        assert_eq!(
            (s.tvn.as_deref(), s.mac.as_deref()),
            (Some("01A46906"), Some("DE4C1C36"))
        );
        let SolicitedStatusInfo::TerminalState(TerminalState::SupplyCounters(c)) = s.info else {
            panic!()
        };
        assert_eq!((c.tsn, c.transaction_count), (0, 3680));
        assert_eq!(c.notes_in_cassettes, vec![20, 0, 11, 0]);
        assert_eq!(c.notes_rejected, vec![8, 15, 27, 0]);
        assert_eq!(c.notes_dispensed, vec![0, 1, 8, 0]);
        assert_eq!(c.last_transaction_notes_dispensed, vec![0, 0, 0, 0]);
        assert_eq!(c.extra, "");
    }

    #[test]
    fn ut_terminal_commands() {
        let HostMessage::TerminalCommand(c) = host(canonical(b"1\x1C001000001\x1C\x1C1", &adv()))
        else {
            panic!()
        };
        assert_eq!(c.command, Command::GoInService);
        let HostMessage::TerminalCommand(c) = host(canonical(b"1\x1C001000001\x1C\x1C21", &adv()))
        else {
            panic!()
        };
        assert_eq!(
            c.command,
            Command::GoOutOfService {
                modifier: Some('1')
            }
        );
    }

    #[test]
    fn np_framed_out_of_service_command() {
        let framed = b"\x00\x0c10\x1c000\x1c000\x1c2";
        let len = usize::from(u16::from_be_bytes([framed[0], framed[1]]));
        assert_eq!(len, framed.len() - 2);
        let HostMessage::TerminalCommand(c) = host(canonical(&framed[2..], &basic())) else {
            panic!()
        };
        assert_eq!((c.response_flag, c.sequence.as_str()), (Some('0'), "000"));
        assert_eq!(c.command, Command::GoOutOfService { modifier: None });
    }

    #[test]
    fn data_commands_from_ut_and_np() {
        let d = basic();
        let data = |b: &[u8]| match host(canonical(b, &d)) {
            HostMessage::DataCommand(c) => c.data,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            data(b"3\x1C001\x1C\x1C16\x1C0023"),
            DataCommandData::ConfigurationId("0023".into())
        );
        let DataCommandData::States(states) =
            data(b"3\x1C001\x1C\x1C12\x1C000A001041064002002002001041")
        else {
            panic!()
        };
        assert_eq!(
            (states[0].number.as_str(), states[0].state_type),
            ("000", 'A')
        );
        assert_eq!(
            states[0].entries,
            ["001", "041", "064", "002", "002", "002", "001", "041"].map(String::from)
        );
        let DataCommandData::EnhancedConfiguration { luno, options, timers } =
        data(b"3\x1C027\x1C\x1C1A\x1C027\x1C000020100912001150014100177000\x1C000300101502005030750700710015")
    else {
        panic!()
    };
        assert_eq!(luno, "027");
        assert_eq!(
            options[1],
            NumberedValue {
                number: 1,
                value: 9
            }
        );
        assert_eq!(options.len(), 6);
        assert_eq!(
            timers[3],
            NumberedValue {
                number: 3,
                value: 75
            }
        );
        // [NP] interactive transaction response: kept raw.
        assert_eq!(
            data(b"30\x1c000\x1c000\x1c210110011000\x1c074\x1cSCREENDATA"),
            DataCommandData::Other {
                identifier: "210110011000".into(),
                fields: vec!["074".into(), "SCREENDATA".into()]
            }
        );
    }

    #[test]
    fn built_screens_fits_key_change_and_date_time_round_trip() {
        let d = basic();
        let cases: Vec<DataCommandData> = vec![
            DataCommandData::Screens(vec![
                Screen {
                    number: "001".into(),
                    data: "\x0C\x0F@@WELCOME".into(),
                },
                Screen {
                    number: "C00".into(),
                    data: String::new(),
                },
                Screen {
                    number: "u0001".into(),
                    data: "X".into(),
                },
            ]),
            DataCommandData::Fits(vec!["000".repeat(42)]),
            DataCommandData::ConfigurationParameters(vec!["0123".into()]),
            DataCommandData::DateTime("2611251200".into()),
            DataCommandData::KeyChange {
                subclass: '4',
                modifier: "2".into(),
                data: KeyField::new(format!("030{}", "123".repeat(16))),
            },
            DataCommandData::KeyChange {
                subclass: '3',
                modifier: "4".into(),
                data: KeyField::new("016"),
            },
        ];
        for data in cases {
            let cmd = DataCommand::new("001", data);
            let bytes = cmd.encode(&d).unwrap();
            assert_eq!(DataCommand::parse(&bytes, &d).unwrap(), cmd);
        }
        let bytes = b"3\x1c001\x1c\x1c42\x1c030123";
        assert!(matches!(
            host(canonical(bytes, &d)),
            HostMessage::DataCommand(DataCommand {
                data: DataCommandData::KeyChange { subclass: '4', .. },
                ..
            })
        ));
    }

    #[test]
    fn built_replies_with_seven_cassettes_and_four_digits() {
        let d = Dialect {
            cassette_types: 7,
            note_digits: 4,
            ..basic()
        };
        let reply = TransactionReply {
            response_flag: Some('0'),
            luno: "001".into(),
            sequence: "123".into(),
            next_state: "125".into(),
            notes_to_dispense: vec![0, 10, 0, 0, 0, 1200, 0],
            tsn: 42,
            function: FunctionId::DispenseAndPrint { code: '8' },
            screen: "068".into(),
            screen_update: String::new(),
            mcn: '7',
            card_flag: '1',
            printer: vec![
                PrinterData {
                    printer: '2',
                    data: "RECEIPT".into(),
                },
                PrinterData {
                    printer: '1',
                    data: "JOURNAL".into(),
                },
            ],
            buffers: vec![IdBuffer {
                id: 'K',
                data: "track1".into(),
            }],
            mac: None,
            trailing_fs: 0,
        };
        let bytes = reply.encode(&d).unwrap();
        assert_eq!(
        bytes,
        b"40\x1c001\x1c123\x1c125\x1c0000001000000000000012000000\x1c00428068\x1c712RECEIPT\x1d1JOURNAL\x1cKtrack1"
    );
        assert_eq!(TransactionReply::parse(&bytes, &d).unwrap(), reply);
        // Too many notes for the width is refused, not truncated.
        let bad = TransactionReply {
            notes_to_dispense: vec![0, 0, 0, 0, 0, 10_000, 0],
            ..reply
        };
        assert!(bad.encode(&d).is_err());
    }

    #[test]
    fn built_solicited_statuses() {
        let d = Dialect {
            ready_after_reply: ReadyAfterReply::BWithTsn,
            ..adv()
        };
        let cases = [
            SolicitedStatusInfo::CommandReject,
            SolicitedStatusInfo::SpecificReject {
                reason: "B04".into(),
            },
            SolicitedStatusInfo::ReadyAfterReply {
                completion: None,
                tsn: Some(1642),
                data: Some("202\x1d01\x1d02".into()),
            },
            SolicitedStatusInfo::TerminalState(TerminalState::ConfigurationId("0022".into())),
            SolicitedStatusInfo::TerminalState(TerminalState::ConfigurationInfo {
                config_id: "0022".into(),
                fields: vec!["D0E0G0".into(), "0123".into(), "".into(), "S".into()],
            }),
            SolicitedStatusInfo::TerminalState(TerminalState::Other {
                fields: vec!["IAD1\x1dE13323".into()],
            }),
        ];
        for info in cases {
            let s = SolicitedStatus {
                tvn: Some("0A1B2C3D".into()),
                mac: Some("DE4C1C36".into()),
                ..SolicitedStatus::new("001000001", info)
            };
            let bytes = s.encode(&d).unwrap();
            assert_eq!(
                SolicitedStatus::parse(&bytes, &d).unwrap(),
                s,
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let wire = b"22\x1c001000001\x1c\x1c\x1cC\x1cB09";
        assert_eq!(
            solicited(wire, &d),
            SolicitedStatusInfo::SpecificReject {
                reason: "B09".into()
            }
        );
        // Without option 12 the terminal never sends `C`.
        assert!(TerminalMessage::parse(b"22\x1c000\x1c\x1cC\x1cB09", &basic()).is_err());
    }

    #[test]
    fn encryptor_init_data() {
        let TerminalMessage::EncryptorInit(e) =
            terminal(canonical(b"23\x1c001000001\x1c\x1c3\x1cA1B2C3", &adv()))
        else {
            panic!()
        };
        assert_eq!((e.id.as_str(), e.kvv.as_str()), ("3", "A1B2C3"));
    }

    #[test]
    fn all_terminal_commands_round_trip() {
        let d = basic();
        for command in [
            Command::GoInService,
            Command::GoOutOfService { modifier: None },
            Command::GoOutOfService {
                modifier: Some('0'),
            },
            Command::SendConfigurationId,
            Command::SendSupplyCounters {
                modifier: Some('2'),
            },
            Command::SendTallyInformation { data: "01".into() },
            Command::SendErrorLogInformation {
                data: String::new(),
            },
            Command::SendConfigurationInformation { modifier: None },
            Command::SendConfigurationInformation {
                modifier: Some('5'),
            },
            Command::SendDateTime,
            Command::Disconnect,
            Command::NoOp,
            Command::Other {
                code: 'Z',
                data: "9".into(),
            },
        ] {
            let c = TerminalCommand::new("001", command);
            let bytes = c.encode(&d).unwrap();
            assert_eq!(TerminalCommand::parse(&bytes, &d).unwrap(), c);
        }
    }

    #[test]
    fn bad_input_gives_typed_errors() {
        let d = basic();
        let field = |b: &[u8]| match NdcMessage::parse(b, &d) {
            Err(NdcError::Field {
                field,
                position,
                reason,
                ..
            }) => (field, position, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(b"11\x1c000\x1c\x1c\x1c1"),
            (
                "top of receipt + MCN",
                4,
                Reason::BadLength {
                    expected: 2,
                    got: 1
                }
            )
        );
        assert_eq!(
            field(b"11\x1c000\x1c\x1c\x1c11\x1c\x1c\x1c\x1c00000012"),
            (
                "amount",
                8,
                Reason::BadLength {
                    expected: 12,
                    got: 8
                }
            )
        );
        assert_eq!(
            field(b"11\x1c000\x1c\x1c\x1c11\x1c\x1c\x1c\x1c00000001200x"),
            ("amount", 8, Reason::NonDigit)
        );
        assert_eq!(
            field(b"22\x1c000\x1c\x1cZ"),
            ("status descriptor", 3, Reason::Unknown('Z'))
        );
        assert_eq!(
            field(b"22\x1c000"),
            ("status descriptor", 3, Reason::Missing)
        );
        assert_eq!(
            field(b"22\x1c000\x1c\x1c8\x1cE9"),
            ("device status", 4, Reason::Unknown('9'))
        );
        assert_eq!(
            field(b"4\x1c000\x1c\x1c125\x1c0001\x1c"),
            (
                "notes to dispense",
                4,
                Reason::BadLength {
                    expected: 8,
                    got: 4
                }
            )
        );
        // An unknown class is not an error: it is kept raw, to be logged and counted.
        assert!(matches!(
            NdcMessage::parse(b"99\x1c", &d),
            Ok(NdcMessage::Unknown(UnknownMessage { ref class, .. })) if class == "99"
        ));
    }
}
