#!/usr/bin/env python3
"""What README.md tells a reader to type or look for exists (decision 0080).

Statically, against the built binary and the sources:
- every `sluice ...` command (fenced code and inline code, as
  tests/ops/test_runbooks.py reads them) names a command of `sluice --help`
  and only options of that command's `--help` (`spool ls|stat|verify`: each);
- every `sluice_*` metric family named exists in the sources (a `_*`
  pattern: some family starts so), and every family the sources register
  is in the operator's table under "### Metrics" (by name or `prefix_*`);
- every `event=NAME` is a string the code logs;
- every decision cited (`decision NNNN`, `decisions 0050, 0062`,
  `docs/decisions/NNNN-...`) has its file in docs/decisions/;
- every `make TARGET` is a target of the Makefile, and every
  `meson test -C build NAME...` and "test(s) `NAME`" names registered
  tests (or a test's case, a `test_NAME` function), "fuzz target(s)
  `NAME`" fuzz targets; every repository path (`deploy/...`, `docs/...`)
  exists.
`--self-test` plants one error of each kind in a copy of README's text and
fails unless each is reported."""
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_runbooks import commands  # noqa: E402  (same reading of code spans)

SRC = os.environ.get("SLUICE_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SLUICE_BIN") or os.path.join(SRC, "build", "cli", "sluice")
DIRS = ("core", "cli", "collector", "pipeline", "shipper", "parsers", "net")
# Top folders of the repository whose files README names.
TREE = ("deploy", "docs", "tests", "benchmarks", "config", "debian", "tools", "cli", "core", "collector",
        "parsers", "shipper", "pipeline", "net", "samples")
# Words in README that look like a metric family but are not one.
NOT_METRICS = {"sluice_version"}


def sources():
    for d in DIRS:
        for dirpath, _, files in os.walk(os.path.join(SRC, d)):
            for f in files:
                if f.endswith(".c"):
                    yield open(os.path.join(dirpath, f), errors="replace").read()


def helps():
    cache = {}

    def get(key):
        if key not in cache:
            r = subprocess.run([BIN] + key.split() + ["--help"], capture_output=True, text=True)
            cache[key] = (r.stdout + r.stderr) if r.returncode == 0 else None
        return cache[key]
    return get


def check(readme, ctx):
    problems = []
    top = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    known = set(re.findall(r"^  ([a-z]+) ", top.stdout + top.stderr, re.M))
    help_of = ctx["help"]
    # `spool ls|stat|verify` (`\\|` in a table) is one command with three
    # subcommands, not a pipeline.
    spans = re.sub(r"(sluice spool [a-z]+)((?:\\?\|[a-z]+)+)",
                   lambda m: m.group(1) + m.group(2).replace("\\", "").replace("|", ","), readme)
    for n, argv in commands(spans):
        words = [w.strip("[]") for w in argv]
        where = "README.md:%d: sluice %s" % (n, " ".join(argv))
        sub = words[0]
        if sub not in known:
            problems.append("%s: no command '%s' (sluice --help: %s)" % (where, sub, " ".join(sorted(known))))
            continue
        keys = [sub]
        if sub == "spool" and len(words) > 1 and not words[1].startswith("-"):
            keys = ["spool " + s for s in words[1].split(",") if s]
        opts = [w.split("=")[0] for w in words[1:] if re.match(r"^--?[a-zA-Z]", w)
                and w not in ("-h", "--help")]
        for key in keys:
            text = help_of(key)
            if text is None:
                problems.append("%s: `sluice %s --help` fails" % (where, key))
                continue
            bad = [o for o in opts if not re.search(r"(^|[\s,\[|])%s\b" % re.escape(o), text)]
            if bad:
                problems.append("%s: options %s are not in `sluice %s --help`" % (where, " ".join(bad), key))

    families = ctx["families"]
    named = set()
    for m in re.finditer(r"\bsluice_[a-z0-9_*]+", readme):
        name = m.group(0)
        line = readme.count("\n", 0, m.start()) + 1
        # Package file names (sluice_0.1.0_amd64.deb, sluice_*.deb) are no metric.
        if name in NOT_METRICS or readme.startswith(".", m.end()) or re.match(r"sluice_\d", name):
            continue
        if "*" in name:
            name = name[:name.index("*") + 1]
        if name.endswith("*"):
            stem = name.rstrip("*")
            hits = {f for f in families if f.startswith(stem)}
            if not hits:
                problems.append("README.md:%d: no metric family starts with %s" % (line, stem))
            named |= hits
        elif name.endswith("_"):
            named |= {f for f in families if f.startswith(name)}
        elif name in families:
            named.add(name)
        else:
            problems.append("README.md:%d: metric %s is not exported by the code" % (line, name))
    # The operator's table under "### Metrics" is the index: every family
    # the code registers is in it, by name or by a `prefix_*` row.
    sec = re.search(r"^### Metrics\n(.*?)^#", readme, re.S | re.M)
    indexed = set()
    for name in re.findall(r"\bsluice_[a-z0-9_*]+", sec.group(1) if sec else ""):
        if "*" in name:
            indexed |= {f for f in families if f.startswith(name[:name.index("*")])}
        else:
            indexed.add(name)
    for f in sorted(families - indexed):
        problems.append("metric family %s is exported but not in README's table under "
                        "\"### Metrics\"" % f)

    for m in re.finditer(r"event=([a-z][a-z0-9_]*)", readme):
        if m.group(1) not in ctx["literals"]:
            line = readme.count("\n", 0, m.start()) + 1
            problems.append("README.md:%d: event=%s is never logged by the code" % (line, m.group(1)))

    for m in re.finditer(r"[Dd]ecisions?\s+((?:\d{4}(?:,\s*|\s+and\s+|\s*/\s*)?)+)|decisions/(\d{4})-", readme):
        for num in re.findall(r"\d{4}", m.group(1) or m.group(2)):
            if num not in ctx["decisions"]:
                line = readme.count("\n", 0, m.start()) + 1
                problems.append("README.md:%d: decision %s has no file in docs/decisions/" % (line, num))

    for m in re.finditer(r"`make ([a-z][a-z0-9-]*)", readme):
        if m.group(1) not in ctx["targets"]:
            line = readme.count("\n", 0, m.start()) + 1
            problems.append("README.md:%d: `make %s` is not a Makefile target" % (line, m.group(1)))
    for m in re.finditer(r"meson test -C build\s+((?:[a-z0-9_]+\s*)+)", readme):
        for name in m.group(1).split():
            if name not in ctx["tests"]:
                line = readme.count("\n", 0, m.start()) + 1
                problems.append("README.md:%d: meson test %s is not a registered test" % (line, name))
    # Files of the repository README points at (not build products: build/...).
    for m in re.finditer(r"(?<![\w./-])((?:%s)/[A-Za-z0-9_./-]*[A-Za-z0-9_])" % "|".join(TREE), readme):
        path = m.group(1)
        rest = readme[m.end():m.end() + 1]
        if rest in ("<", "*") or os.path.exists(os.path.join(SRC, path)):
            continue
        line = readme.count("\n", 0, m.start()) + 1
        problems.append("README.md:%d: %s does not exist in the repository" % (line, path))
    # "(test `loki_push`, `hostile_bodies`)", "fuzz targets `syslog_framer`":
    # a registered test, one of its cases (a test_NAME function), a fuzz target.
    for m in re.finditer(r"\b(fuzz targets?|tests?) ((?:`[a-z0-9_]+`(?:, | and |/)?)+)", readme):
        for name in re.findall(r"`([a-z0-9_]+)`", m.group(2)):
            fuzz = m.group(1).startswith("fuzz")
            if (fuzz and name not in ctx["fuzz"]) or \
                    (not fuzz and name not in ctx["tests"] and name not in ctx["cases"]):
                line = readme.count("\n", 0, m.start()) + 1
                problems.append("README.md:%d: %s `%s` does not exist" % (line, m.group(1), name))
    return problems


def context():
    text = "\n".join(sources())
    families = set(re.findall(r'"(?:# (?:HELP|TYPE) )?(sluice_[a-z0-9_]+)', text))
    families |= set(re.findall(r"\b(sluice_[a-z0-9_]+)(?:\{| %)", text))
    families = {f for f in families if f not in NOT_METRICS}
    literals = set(re.findall(r'"([a-z][a-z0-9_]+)"', text))
    decisions = {f[:4] for f in os.listdir(os.path.join(SRC, "docs", "decisions")) if re.match(r"\d{4}-", f)}
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", open(os.path.join(SRC, "Makefile")).read(), re.M))
    tests = set()
    for f in (os.path.join(SRC, "tests", "meson.build"),):
        tests |= set(re.findall(r"\+=\s*\{\s*'([a-z0-9_]+)'", open(f).read()))
        tests |= set(re.findall(r"^\s*'([a-z0-9_]+)'\s*:", open(f).read(), re.M))
    fuzz = set()
    build = open(os.path.join(SRC, "tests", "meson.build")).read()
    for block in re.findall(r"fuzz_targets\s*\+=\s*\{(.*?)\}", build, re.S):
        fuzz |= set(re.findall(r"'([a-z0-9_]+)'\s*:", block))
    cases = set()
    for dirpath, _, files in os.walk(os.path.join(SRC, "tests")):
        for f in files:
            if f.endswith(".c"):
                cases |= set(re.findall(r"\bvoid test_([a-z0-9_]+)\s*\(",
                                        open(os.path.join(dirpath, f), errors="replace").read()))
    return {"help": helps(), "families": families, "literals": literals, "decisions": decisions,
            "targets": targets, "tests": tests, "fuzz": fuzz, "cases": cases}


PLANTS = [
    ("sluice frobnicate --now", "no command 'frobnicate'"),
    ("sluice tail --follow-forever", "--follow-forever are not in `sluice tail --help`"),
    ("sluice spool ls|stat|purge", "`sluice spool purge --help` fails"),
    ("`sluice_sink_teleported_total`", "metric sluice_sink_teleported_total is not exported"),
    ("`event=agent_teleported`", "event=agent_teleported is never logged"),
    ("(decision 0999)", "decision 0999 has no file"),
    ("`make teleport`", "`make teleport` is not a Makefile target"),
    ("`meson test -C build teleport`", "meson test teleport is not a registered test"),
    ("(test `teleport_e2e`)", "test `teleport_e2e` does not exist"),
    ("(fuzz target `teleport`)", "fuzz target `teleport` does not exist"),
    ("see docs/runbooks/teleport.md", "docs/runbooks/teleport.md does not exist"),
]


def self_test(readme, ctx):
    """Each planted error is reported; the README as it is, is not."""
    failed = 0
    for plant, said in PLANTS:
        span = plant if plant.startswith(("`", "(")) else "`%s`" % plant
        text = readme + "\n\n%s\n" % span
        got = [p for p in check(text, ctx) if said in p]
        print("%s: planted %s -> %s" % ("ok" if got else "FAIL", plant, got[0] if got else "not reported"))
        failed += not got
    # A family dropped from README is reported as missing: one the table
    # names by its full name.
    sec = re.search(r"^### Metrics\n(.*?)^#", readme, re.S | re.M)
    fam = sorted(f for f in ctx["families"] if sec and "`%s`" % f in sec.group(1))[0]
    got = [p for p in check(readme.replace(fam, "sluice_input_open_files_x"), ctx)
           if "family %s is exported but not in README's table" % fam in p]
    print("%s: %s removed from README -> %s" % ("ok" if got else "FAIL", fam, got[0] if got else "not reported"))
    failed += not got
    return failed


def main():
    if not os.access(BIN, os.X_OK):
        print("no sluice binary at " + BIN)
        return 1
    readme = open(os.path.join(SRC, "README.md")).read()
    ctx = context()
    problems = check(readme, ctx)
    for p in problems:
        print("FAIL: " + p)
    failed = len(problems)
    if not problems:
        print("ok: README's commands, options, metrics, events, decisions, make targets and tests exist")
    failed += self_test(readme, ctx)
    print()
    if failed:
        print("%d check(s) failed" % failed)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
