#!/usr/bin/env python3
"""README.md's key tables are the key tables of the code.

1. `sluice keys --markdown` prints every table from the plugins' key tables
   (the top level, each registered input, the parse steps, each sink, the
   buffer), each between `<!-- sluice keys: TITLE -->` and
   `<!-- end sluice keys -->`; it fails when a key has no doc or a default
   that does not parse. README.md must hold each of those blocks exactly,
   and no other block. `test_readme_keys.py --update` rewrites the blocks
   in README.md (a new section's marker pair is placed by hand once).
2. Tables not reachable from a plugin's table (sub-maps such as Loki's
   `auth`, `tls`, `limits`, the file input's `multiline`, journald's
   `fields`) are found in the sources (every `sl_cfg_key NAME[] = {...}`
   and the common-key macros of core/plugin.h): each key must appear in a
   backtick span of the README section of the plugin that owns the table."""
import os
import re
import subprocess
import sys

SRC = os.environ.get("SLUICE_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
BIN = os.environ.get("SLUICE_BIN") or os.path.join(SRC, "build", "cli", "sluice")
DIRS = ["core", "collector", "parsers", "shipper", "cli", "pipeline", "net"]

BLOCK = re.compile(r"<!-- sluice keys: (.+?) -->\n.*?<!-- end sluice keys -->\n", re.S)

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

TABLE = re.compile(r"sl_cfg_key\s+(\w+)\s*\[[^\]]*\]\s*=\s*\{(.*?)\n\};", re.S)
MACRO = re.compile(r"#define\s+(SL_\w+_COMMON_KEYS)((?:.*\\\n)*.*)")
KEY = re.compile(r'(?:\.name\s*=\s*"([a-z0-9_]+)"|\{\s*"([a-z0-9_]+)"\s*,\s*SL_KEY_)')


def generated():
    run = subprocess.run([BIN, "keys", "--markdown"], capture_output=True, text=True)
    if run.returncode != 0:
        print("sluice keys --markdown failed (%d):\n%s" % (run.returncode, run.stderr))
        return None
    return {m.group(1): m.group(0) for m in BLOCK.finditer(run.stdout)}


def check_blocks(readme, blocks):
    problems = []
    found = {m.group(1): m.group(0) for m in BLOCK.finditer(readme)}
    for title, text in blocks.items():
        if title not in found:
            problems.append("README has no block '<!-- sluice keys: %s -->': add the marker "
                            "pair where it belongs, then run %s --update" % (title, sys.argv[0]))
        elif found[title] != text:
            want, have = text.splitlines(), found[title].splitlines()
            diff = [l for l in want if l not in have][:3] + ["(README) " + l for l in have
                                                              if l not in want][:3]
            problems.append("README block '%s' differs from `sluice keys --markdown`: %s"
                            % (title, "; ".join(diff)))
    for title in found:
        if title not in blocks:
            problems.append("README block '%s' is not a key table of the code" % title)
    return problems


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
                    yield rel, m.group(1), [a or b for a, b in KEY.findall(m.group(2))]
                for m in MACRO.finditer(text):
                    yield rel, m.group(1), [a or b for a, b in KEY.findall(m.group(2))]


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


def check_mentions(readme):
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
    if ntables < 15 or nkeys < 150:
        missing.append("found only %d keys in %d schema tables: the extraction is broken"
                       % (nkeys, ntables))
    print("%d keys in %d source tables" % (nkeys, ntables))
    return missing


def main():
    path = os.path.join(SRC, "README.md")
    readme = open(path, encoding="utf-8").read()
    blocks = generated()
    if blocks is None:
        return 1
    if len(sys.argv) > 1 and sys.argv[1] == "--update":
        readme = BLOCK.sub(lambda m: blocks.get(m.group(1), m.group(0)), readme)
        open(path, "w", encoding="utf-8").write(readme)
    problems = check_blocks(readme, blocks)
    problems += check_mentions(readme)
    for p in problems:
        print("MISSING " + p)
    print("%d generated tables; %d problems" % (len(blocks), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
