#!/usr/bin/env python3
"""A ported key table is the only place its defaults are written
(decision 0026).

A table is ported once any of its keys has an `.at` (sl_cfg_read stores
it). For every ported table in the sources:

1. every key with a `.def` also has an `.at`: a default the reader does not
   apply is a default the code applies from somewhere else;
2. no `sl_cfg_str/int/bool/size/size_range/duration_ms/enum` call names one
   of its keys with a `.def` as a literal (nor a key with only an `.at`
   with a default other than NULL), in the table's file or in a file that
   reads that table (READERS): such a call carries a second default (and
   range) that can drift from the table's, which is what this test exists
   to catch.

Tables with no `.at` yet (plugins being rewritten elsewhere) are listed,
not failed; they join the check with their first `.at`.

Run with the source tree in SLUICE_SRC (meson sets it)."""
import os
import re
import sys

SRC = os.environ.get("SLUICE_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
DIRS = ["core", "collector", "parsers", "shipper", "cli", "pipeline", "net"]
# Files that read a table defined in another file (the table's file first).
READERS = {
    "shipper/kafka.c": ["shipper/kafka_config.c"],
    "parsers/json.c": ["parsers/step_json.c"],
    "cli/agent.c": ["pipeline/lifecycle.c", "pipeline/check.c", "cli/spool_cmd.c"],
}
# The reader itself and the schema check call the getters with a variable key.
SKIP = {"core/config_schema.c"}

TABLE = re.compile(r"sl_cfg_key\s+(\w+)\s*\[[^\]]*\]\s*=\s*\{(.*?)\n\};", re.S)
ENTRY = re.compile(r"\{\s*\.name\s*=\s*\"([a-z0-9_]+)\"(.*?)\}(?=\s*,|\s*$)", re.S)
GETTER = re.compile(
    r"\bsl_cfg_(str|int|bool|size|size_range|duration_ms|enum)\s*\(\s*[^,]+,\s*[^,]+,\s*"
    r"\"([a-z0-9_]+)\"\s*,\s*([^,]+),")


def sources():
    for d in DIRS:
        for dirpath, _, files in os.walk(os.path.join(SRC, d)):
            for f in sorted(files):
                if f.endswith(".c"):
                    path = os.path.join(dirpath, f)
                    yield os.path.relpath(path, SRC), open(path, encoding="utf-8").read()


def main():
    texts = dict(sources())
    problems, ported, unported, nkeys = [], [], [], 0
    for rel, text in texts.items():
        for m in TABLE.finditer(text):
            table = m.group(1)
            entries = [(name, ".def" in body, ".at" in body)
                       for name, body in ENTRY.findall(m.group(2))]
            if not any(at for _, _, at in entries):
                unported.append("%s %s" % (rel, table))
                continue
            ported.append("%s %s" % (rel, table))
            nkeys += len(entries)
            with_def, at_only = set(), set()
            for name, has_def, has_at in entries:
                if has_def and not has_at:
                    problems.append("%s %s: key '%s' has a default but no .at: sl_cfg_read "
                                    "does not apply it" % (rel, table, name))
                if has_def:
                    with_def.add(name)
                elif has_at:
                    at_only.add(name)
            for reader in [rel] + READERS.get(rel, []):
                if reader in SKIP or reader not in texts:
                    continue
                for g in GETTER.finditer(texts[reader]):
                    # A key without a default may be looked at again (a probe
                    # reading `path`), but never with a default of the code's.
                    if g.group(2) in with_def or (g.group(2) in at_only and
                                                  g.group(3).strip() != "NULL"):
                        line = texts[reader].count("\n", 0, g.start()) + 1
                        problems.append(
                            "%s:%d: sl_cfg_%s reads '%s', which %s %s reads with its default: "
                            "a second default in code" % (reader, line, g.group(1), g.group(2),
                                                          rel, table))
    # The extraction must see the ported tables, or the test proves nothing.
    if len(ported) < 12 or nkeys < 60:
        problems.append("found only %d ported tables (%d keys): the extraction is broken"
                        % (len(ported), nkeys))
    print("%d ported tables (%d keys): %s" % (len(ported), nkeys, ", ".join(ported)))
    print("not ported yet: %s" % ", ".join(unported))
    for p in problems:
        print("PROBLEM " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
