#!/usr/bin/env python3
"""Every configuration key of the schema is documented in README.md.

The keys come from the code's schema tables (every `sl_cfg_key NAME[] = {...}`
and the common-key macros of core/plugin.h), so a key added to a table without
a README line fails here. Each table's keys must appear in the README section
of the plugin that owns the table (a key inside a backtick span: `key`,
`parent.key`, `{a, key}`); tables in files this test does not know yet must
appear somewhere in the configuration reference."""
import os
import re
import sys

SRC = os.environ.get("SLUICE_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
DIRS = ["core", "collector", "parsers", "shipper", "cli", "pipeline", "net"]

# (file, table) or file -> README heading that documents it. Checked in order.
SECTIONS = [
    (("pipeline/check.c", "buffer_keys"), "### Every sink: `buffer`"),
    ("cli/agent.c", "### Top level"),
    ("collector/file.c", "### Input `type: file`"),
    ("collector/multiline.c", "### Input `type: file`"),
    ("collector/journald.c", "### Input `type: journald`"),
    ("collector/syslog_input.c", "### Input `type: syslog`"),
    ("net/tls.c", "### Input `type: syslog`"),
    ("parsers/", "### Parse steps"),
    ("shipper/filesink.c", "### Sink `type: stdout` / `type: file`"),
    ("shipper/discard.c", "### Sink `type: discard`"),
    ("shipper/loki.c", "### Sink `type: loki`"),
    ("shipper/kafka.c", "### Sink `type: kafka`"),
]
REFERENCE = "## Configuration reference"

TABLE = re.compile(r"sl_cfg_key\s+(\w+)\s*\[\]\s*=\s*\{(.*?)\};", re.S)
MACRO = re.compile(r"#define\s+(SL_\w+_COMMON_KEYS)((?:.*\\\n)*.*)")
KEY = re.compile(r'\{\s*"([a-z0-9_]+)"\s*,\s*SL_KEY_')


def tables():
    for d in DIRS:
        root = os.path.join(SRC, d)
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, SRC)
                text = open(path, encoding="utf-8").read()
                for m in TABLE.finditer(text):
                    yield rel, m.group(1), KEY.findall(m.group(2))
                for m in MACRO.finditer(text):
                    yield rel, m.group(1), KEY.findall(m.group(2))


def section(readme, heading):
    start = readme.find("\n" + heading)
    if start < 0:
        return None
    level = heading.split(" ")[0]
    end = len(readme)
    for m in re.finditer(r"\n(#+) ", readme[start + 1:]):
        if len(m.group(1)) <= len(level):
            end = start + 1 + m.start()
            break
    return readme[start:end]


def documented(text, key):
    word = re.compile(r"(?<![A-Za-z0-9_])" + re.escape(key) + r"(?![A-Za-z0-9_])")
    return any(word.search(span) for span in re.findall(r"`([^`\n]+)`", text))


def main():
    readme = open(os.path.join(SRC, "README.md"), encoding="utf-8").read()
    reference = section(readme, REFERENCE)
    assert reference, "README has no '%s' section" % REFERENCE
    missing, nkeys, ntables = [], 0, 0
    for rel, table, keys in tables():
        ntables += 1
        heading = REFERENCE
        for what, h in SECTIONS:
            if what == (rel, table) or (isinstance(what, str) and rel.startswith(what)):
                heading = h
                break
        text = section(readme, heading) if heading != REFERENCE else reference
        if text is None:
            missing.append("%s: README has no section '%s'" % (rel, heading))
            continue
        for k in keys:
            nkeys += 1
            if not documented(text, k):
                missing.append("%s %s: key `%s` not in README section '%s'" % (rel, table, k, heading))
    if ntables < 15:
        print("found only %d schema tables: the extraction is broken" % ntables)
        return 1
    for m in missing:
        print("MISSING " + m)
    print("%d keys in %d tables, %d undocumented" % (nkeys, ntables, len(missing)))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
