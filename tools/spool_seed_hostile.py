#!/usr/bin/env python3
"""Writes the spool seeds of decision 0054 into tests/fuzz/corpus/spool/:
uncompressed format-2 entries with valid checksums whose payload breaks a
promise the encoder keeps (a value whose text is not its type's, a DROPPED
record, a REMOVED label, a time outside the header's range), each of which
the decoder must count as damaged, and hostile_ok_types.seg, one valid
entry holding every value type (and flag bits the decoder clears) for the
fuzzer to start from. The layout is pipeline/spool_codec.c's.

  python3 tools/spool_seed_hostile.py [DIR]"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spool_layout import MAGIC, crc32c  # noqa: E402

V_STRING, V_ESCAPED, V_NUMBER, V_TRUE, V_FALSE, V_NULL, V_OBJECT, V_ARRAY = range(1, 9)
FF_KEY_ESCAPED, FF_LABEL, FF_REMOVED, FF_VERBATIM = 1, 2, 8, 16
RF_DROPPED = 16
T = 1700000000000000000



def s(text):
    b = text if isinstance(text, bytes) else text.encode()
    return struct.pack("<I", len(b)) + b


def field(key, val, vtype, flags=0):
    return s(key) + s(val) + bytes([vtype, flags])


def entry(fields, labels=None, rflags=0, time=T, hdr_times=None):
    labels = labels if labels is not None else [field("job", "web", V_STRING, FF_LABEL)]
    payload = struct.pack("<II", 1, len(labels)) + s("app") + struct.pack("<I", 0xFFFFFFFF)
    payload += b"".join(labels)
    payload += struct.pack("<qII", time, rflags, len(fields)) + s("GET /x 200") + b"".join(fields)
    tmin, tmax = hdr_times or (time, time)
    hdr = MAGIC + bytes([2, 0, 0, 0]) + struct.pack("<QqqIII", 1, tmin, tmax, 1, len(payload),
                                                   len(payload))
    hdr += struct.pack("<I", crc32c(payload))
    hdr += struct.pack("<I", crc32c(hdr))
    return hdr + payload


ok = field("k", "v", V_STRING)
seeds = {
    "hostile_number.seg": entry([field("n", '1,"injected":true', V_NUMBER)]),
    "hostile_escaped_quote.seg": entry([field("e", 'a","injected":"y', V_ESCAPED)]),
    "hostile_lone_surrogate.seg": entry([field("e", "\\ud800", V_ESCAPED)]),
    "hostile_escaped_utf8.seg": entry([field("e", b"\xc3", V_ESCAPED)]),
    "hostile_key_escaped.seg": entry([field('k"}', "v", V_STRING, FF_KEY_ESCAPED)]),
    "hostile_literal.seg": entry([field("t", "", V_TRUE)]),
    "hostile_object.seg": entry([field("o", '{"a":1}}', V_OBJECT)]),
    "hostile_label_escaped.seg": entry([ok], [field("job", 'w"', V_ESCAPED, FF_LABEL)]),
    "hostile_dropped.seg": entry([ok], rflags=RF_DROPPED),
    "hostile_removed_label.seg": entry([ok], [field("job", "web", V_STRING,
                                                    FF_LABEL | FF_REMOVED)]),
    "hostile_time_range.seg": entry([ok], hdr_times=(T - 2, T - 1)),
    "hostile_time_inverted.seg": entry([ok], hdr_times=(T + 1, T - 1)),
    "hostile_ok_types.seg": entry([
        field("n", "-12.5e+10", V_NUMBER),
        field("t", "true", V_TRUE),
        field("f", "false", V_FALSE),
        field("z", "null", V_NULL),
        field("o", '{"a":[1,{"b":null}],"c":"\\u00e9"}', V_OBJECT),
        field("a", '["x",2]', V_ARRAY),
        field("e", 'q\\"\\\\\\ud83d\\ude00 \u00e9', V_ESCAPED),
        field("k\\u0041", "v", V_STRING, FF_KEY_ESCAPED | FF_LABEL | FF_VERBATIM | 0xE0),
        field('raw"key', b'raw "value" \x01\xff', V_STRING, FF_LABEL),
    ], rflags=0xFFFFFFFF & ~RF_DROPPED),
}
# For the fuzzer's comparison of the decoder's value checks with the json
# step's validator: the first byte picks the type (type - 1), the rest is
# the value.
seeds["value_object.bin"] = bytes([V_OBJECT - 1]) + b'{"a":[1,-2.5e3,{"b":"\\u00e9\\"x"}],"c":null}'
seeds["value_array.bin"] = bytes([V_ARRAY - 1]) + b'[ true , false, "\xc3\xa9", [] ]'
seeds["value_escaped.bin"] = bytes([V_ESCAPED - 1]) + b'a\\"b\\ud83d\\ude00 c\\u0041'
seeds["value_number.bin"] = bytes([V_NUMBER - 1]) + b"-0.5E+10"
out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/spool"
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
