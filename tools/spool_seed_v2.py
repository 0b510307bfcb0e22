#!/usr/bin/env python3
"""Writes tests/fuzz/corpus/spool/raw_refs_v2.seg: two uncompressed format-2
spool entries whose fields point into their record's line (see the batch
codec in pipeline/spool_codec.c). The first is valid; the second has a field that
points past the end of its line and must be counted as damaged. Unit tests
read it back (tests/unit/test_spool.c) and the fuzzer starts from it.

  python3 tools/spool_seed_v2.py [OUT]"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spool_layout import MAGIC, crc32c  # noqa: E402

REF = 0x80000000
V_STRING, V_NUMBER, FF_LABEL = 1, 3, 2



def s(text):
    b = text.encode()
    return struct.pack("<I", len(b)) + b


def ref(off, n):
    return struct.pack("<II", REF | n, off)


def field(key, val, vtype, flags=0):
    return key + val + bytes([vtype, flags])


def entry(seq, line, fields):
    payload = struct.pack("<II", 1, 1) + s("app") + struct.pack("<I", 0xFFFFFFFF)
    payload += field(s("job"), s("web"), V_STRING, FF_LABEL)
    payload += struct.pack("<qII", 7, 0, len(fields)) + s(line) + b"".join(fields)
    hdr = MAGIC + bytes([2, 0, 0, 0]) + struct.pack("<QqqIII", seq, 7, 7, 1, len(payload),
                                                   len(payload))
    hdr += struct.pack("<I", crc32c(payload))
    hdr += struct.pack("<I", crc32c(hdr))
    return hdr + payload


line = "GET /x 200"
good = entry(1, line, [field(s("code"), ref(7, 3), V_NUMBER),
                       field(ref(0, 3), ref(4, 2), V_STRING)])
bad = entry(2, line, [field(s("code"), ref(8, 3), V_NUMBER)])  # 8 + 3 > 10
out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/spool/raw_refs_v2.seg"
with open(out, "wb") as f:
    f.write(good + bad)
