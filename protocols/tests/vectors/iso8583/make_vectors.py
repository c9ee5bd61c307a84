#!/usr/bin/env python3
"""Test vectors for protocols::iso8583, produced by pyiso8583 4.0.1 itself.

Encodes realistic ATM messages with pyiso8583's `default_ascii` (our `iso87-ascii`) and `default`
(our `iso87-binary`) specs and writes vectors.json: a list of
    {"name", "spec", "hex", "fields"}          -- fields = pyiso8583 decode() dict minus bitmaps
and a list of invalid messages with pyiso8583's verdict:
    {"name", "spec", "hex", "error"}           -- error = str(DecodeError)
It also dumps both pyiso8583 specs (pyiso_specs.json) so the Rust tests can check that the
built-in TOML specs are a faithful transcription.

    pip install /tmp/piso/pyiso8583-4.0.1-py3-none-any.whl   # pyiso8583==4.0.1
    python3 protocols/tests/vectors/iso8583/make_vectors.py
"""
import copy
import json
import os

import iso8583
from iso8583.specs import default, default_ascii

assert iso8583.__version__ == "4.0.1", iso8583.__version__

SPECS = {"iso87-ascii": default_ascii, "iso87-binary": default}


def _f(data_enc, len_type, max_len, len_enc="ascii", **extra):
    return dict(data_enc=data_enc, len_enc=len_enc, len_type=len_type, max_len=max_len, desc="", **extra)


# The same layout as bank_dialect.toml, in pyiso8583's terms (len_type = bytes of length header).
BANK = {
    "h": _f("ascii", 0, 0), "t": _f("cp500", 0, 4), "p": _f("b", 0, 8), "1": _f("b", 0, 8),
    "2": _f("b", 1, 19, "bcd", len_count="nibbles", left_pad="0"),
    "3": _f("b", 0, 3), "4": _f("cp500", 0, 12), "7": _f("cp500", 0, 10),
    "11": _f("b", 0, 6, len_count="nibbles"), "22": _f("b", 0, 3, len_count="nibbles", left_pad="0"),
    "35": _f("b", 1, 37, "bcd", len_count="nibbles", right_pad="F"),
    "39": _f("cp500", 0, 2), "41": _f("cp500", 0, 8), "43": _f("ascii", 1, 40, "b"),
    "48": _f("cp500", 3, 999, "cp500"), "49": _f("cp500", 0, 3), "52": _f("b", 0, 8),
    "55": _f("b", 2, 255, "b"), "70": _f("cp500", 0, 3), "90": _f("b", 0, 21), "128": _f("b", 0, 8),
}

PAN = "4761739001010010"
TRACK2 = "4761739001010010=22122011143804400000"
PIN_BIN = "1A2B3C4D5E6F7081"  # 8 bytes as hex (binary spec); 16 hex chars (ascii spec)
MAC = "0123456789ABCDEF"


def withdrawal_0100():
    return {
        "t": "0100", "2": PAN, "3": "010000", "4": "000000010000", "7": "1125103015",
        "11": "000123", "12": "113015", "13": "1125", "14": "2212", "18": "6011", "22": "051",
        "25": "02", "32": "12345678901", "35": TRACK2, "37": "533012000123", "41": "ATM00001",
        "42": "BANKMERCHANT001", "43": f"{'MAIN STREET 1':<23}{'SPRINGFIELD':<13}ILUS", "49": "978",
        "52": PIN_BIN,
    }


def response_0110():
    return {
        "t": "0110", "2": PAN, "3": "010000", "4": "000000010000", "7": "1125103015",
        "11": "000123", "12": "113015", "13": "1125", "32": "12345678901", "37": "533012000123",
        "38": "A1B2C3", "39": "00", "41": "ATM00001", "49": "978",
        "54": "1001978C0000012345671002978C000001234567",
    }


def balance_0100():
    m = withdrawal_0100()
    m.update({"3": "310000", "4": "000000000000"})
    return m


def deposit_0200():
    return {
        "t": "0200", "2": PAN, "3": "210000", "4": "000000050000", "7": "1125110000",
        "11": "000124", "12": "120000", "13": "1125", "35": TRACK2, "37": "533012000124",
        "41": "ATM00001", "49": "978", "52": PIN_BIN,
    }


def completion_0220():
    return {
        "t": "0220", "2": PAN, "3": "010000", "4": "000000010000", "7": "1125103100",
        "11": "000125", "12": "113100", "13": "1125", "37": "533012000123", "39": "00",
        "41": "ATM00001", "49": "978",
        "90": "010000012311251030150000012345600000000000",
        "95": "000000004000000000000000D00000150C00000000",
    }


def reversal_0420():
    return {
        "t": "0420", "2": PAN, "3": "010000", "4": "000000010000", "7": "1125103200",
        "11": "000126", "37": "533012000123", "39": "68", "41": "ATM00001", "49": "978",
        "90": "010000012311251030150000012345600000000000",
    }


def repeat_0421():
    m = reversal_0420()
    m["t"] = "0421"
    return m


def reversal_response_0430():
    return {
        "t": "0430", "3": "010000", "4": "000000010000", "7": "1125103200", "11": "000126",
        "37": "533012000123", "39": "00", "41": "ATM00001", "49": "978",
        "90": "010000012311251030150000012345600000000000",
    }


def echo_0800():
    return {"t": "0800", "7": "1125120000", "11": "000001", "70": "301"}


def signon_0810():
    return {"t": "0810", "7": "1125120000", "11": "000002", "39": "00", "70": "001"}


def status_0820():
    return {"t": "0820", "7": "1125120500", "11": "000003", "41": "ATM00001",
            "48": "DEV=CDM;ST=FATAL;SUPPLY=LOW", "70": "301"}


def financial_with_mac_0200():
    m = deposit_0200()
    m.update({"55": "9F2608A1B2C3D4E5F607089F2701809F100706010A03A0B800",
              "64": MAC, "128": MAC})
    return m


def many_secondary_fields():
    return {
        "t": "0200", "3": "300000", "11": "000999", "66": "1", "67": "02", "68": "840", "69": "978",
        "70": "001", "71": "0001", "72": "0002", "73": "251125", "74": "0000000001",
        "82": "000000000100", "86": "0000000000012345", "90": "020000099911251200000000000000100000000002",
        "91": "1", "93": "RESP1", "94": "SVCIND1", "95": "000000001000000000001000C00000000D00000010",
        "96": MAC, "97": "C0000000000012345", "98": f"{'PAYEE NAME':<25}", "99": "12345", "100": "6789",
        "101": "FILE.DAT", "102": "ACC-1", "103": "ACC-2", "104": "Transfer to savings",
        "120": "private data 120", "127": "x" * 300, "128": MAC,
    }


def long_var_fields():
    return {
        "t": "0100", "2": "1234567890123456789", "34": "EXTENDEDPAN1234567890", "36": "0123456789=0123456789",
        "44": "ADDITIONAL RESPONSE", "45": "B4761739001010010^DOE/JOHN^22122011000000000000",
        "46": "", "47": "national", "48": "A" * 999, "60": "0", "61": "61", "62": "6" * 99, "63": "63",
    }


MESSAGES = {
    "0100 withdrawal with PAN, track 2, PIN block": withdrawal_0100,
    "0100 balance inquiry": balance_0100,
    "0110 approval with balances (54)": response_0110,
    "0200 deposit": deposit_0200,
    "0200 with ICC data, MAC 64 and MAC 128": financial_with_mac_0200,
    "0220 completion advice with 90 and 95 (partial dispense)": completion_0220,
    "0420 reversal with 90": reversal_0420,
    "0421 repeated reversal": repeat_0421,
    "0430 reversal response": reversal_response_0430,
    "0800 echo (70 = 301)": echo_0800,
    "0810 sign-on response": signon_0810,
    "0820 status advice with field 48": status_0820,
    "0200 with many secondary-bitmap fields 66-128": many_secondary_fields,
    "0100 with long variable fields (maximum 48, empty 46)": long_var_fields,
}


def strip_bitmaps(decoded):
    return {k: v for k, v in decoded.items() if k not in ("p", "1")}


BANK_MESSAGES = {
    "bank 0100 with BCD PAN (odd length, left pad), BCD track 2 (right pad F), EBCDIC text": {
        "t": "0100", "2": "4761739001010010123", "3": "010000", "4": "000000010000", "7": "1125103015",
        "11": "000123", "22": "051", "35": "4761739001010010D22122011143804400000", "41": "ATM 0001",
        "43": "Main Street 1, Springfield", "48": "DEV=CDM;ST=OK", "49": "978", "52": PIN_BIN,
        "55": "9F2608A1B2C3D4E5F60708", "128": MAC,
    },
    "bank 0420 with even-length BCD PAN and BCD field 90": {
        "t": "0420", "2": "4761739001010010", "3": "010000", "4": "000000010000", "11": "000124",
        "39": "00", "41": "ATM00002", "49": "840", "90": "010000012311251030150000012345600000000000",
    },
    "bank 0800 echo": {"t": "0800", "7": "1125120000", "11": "000001", "70": "301"},
}


def valid_vectors():
    out = []
    for name, fields in BANK_MESSAGES.items():
        encoded, _ = iso8583.encode(copy.deepcopy(fields), BANK)
        decoded, _ = iso8583.decode(bytes(encoded), BANK)
        assert strip_bitmaps(decoded) == fields, name
        out.append({"name": name, "spec": "bank-dialect", "hex": bytes(encoded).hex().upper(),
                    "fields": strip_bitmaps(decoded)})
    for spec_name, spec in SPECS.items():
        for name, make in MESSAGES.items():
            fields = make()  # binary fields are hex in both specs' dictionaries
            encoded, _ = iso8583.encode(copy.deepcopy(fields), spec)
            decoded, _ = iso8583.decode(bytes(encoded), spec)
            assert strip_bitmaps(decoded) == fields, (name, spec_name)
            out.append({"name": name, "spec": spec_name, "hex": bytes(encoded).hex().upper(),
                        "fields": strip_bitmaps(decoded)})
    return out


def invalid_vectors():
    out = []
    for spec_name, spec in SPECS.items():
        base, _ = iso8583.encode(withdrawal_0100(), spec)
        base = bytes(base)
        sec, _ = iso8583.encode(many_secondary_fields(), spec)
        sec = bytes(sec)
        pan_only = bytes(iso8583.encode({"t": "0100", "2": PAN}, spec)[0])
        bm = 16 if spec_name == "iso87-ascii" else 8
        pan_at = 4 + bm  # LL header of field 2
        cases = [
            ("empty input", b""),
            ("MTI truncated", base[:3]),
            ("primary bitmap truncated", base[: 4 + bm - 1]),
            ("secondary bitmap truncated", sec[: 4 + bm + 3]),
            ("truncated inside field 2", base[: pan_at + 5]),
            ("truncated in the last field", base[:-1]),
            ("trailing byte", base + b"0"),
            ("trailing bytes after secondary fields", sec + b"XYZ"),
            ("non-numeric LL header of field 2", base[:pan_at] + b"1A" + base[pan_at + 2:]),
            ("LL header of field 2 over max 19", base[:pan_at] + b"25" + base[pan_at + 2:]),
            ("LL header of field 2 beyond the input", pan_only[:pan_at] + b"19" + pan_only[pan_at + 2:]),
            ("non-ASCII byte in field 3", base[: pan_at + 18] + b"\xC30000" + base[pan_at + 23:]),
        ]
        if spec_name == "iso87-ascii":
            cases.append(("non-hex primary bitmap", base[:4] + b"G" + base[5:]))
            cases.append(("non-hex secondary bitmap", sec[:20] + b"Z" + sec[21:]))
        for case, data in cases:
            try:
                iso8583.decode(data, spec)
            except iso8583.DecodeError as e:
                out.append({"name": case, "spec": spec_name, "hex": data.hex().upper(), "error": str(e),
                            "field": e.field, "pos": e.pos})
            else:
                raise AssertionError(f"pyiso8583 accepted {case} ({spec_name})")
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    doc = {
        "generator": "make_vectors.py with pyiso8583 " + iso8583.__version__,
        "valid": valid_vectors(),
        "invalid": invalid_vectors(),
    }
    with open(os.path.join(here, "vectors.json"), "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=False)
        fh.write("\n")
    specs_dump = {
        name: {k: {kk: vv for kk, vv in v.items() if kk != "desc"} for k, v in spec.items()}
        for name, spec in SPECS.items()
    }
    with open(os.path.join(here, "pyiso_specs.json"), "w") as fh:
        json.dump(specs_dump, fh, indent=0)
        fh.write("\n")
    print(f"{len(doc['valid'])} valid, {len(doc['invalid'])} invalid vectors")


if __name__ == "__main__":
    main()
