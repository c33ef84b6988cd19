#!/usr/bin/env python3
"""Checks the man pages against the programs (a `make check` test, TAP-ish
like the C unit tests): every daemon setting of the settings table (as
`onceledgerd --help` prints it) and every other option of the daemon is in
man/onceledgerd.8 with its environment variable; every subcommand of
`onceledger --help` and every option the CLI parses (src/cli/cli_common.c)
is in man/onceledger.1; and `man -l --warnings` renders both without a
warning (skipped where man(1) is missing).

Run by `make check` from the build directory, with top_srcdir in the
environment (AM_TESTS_ENVIRONMENT)."""
import os
import re
import shutil
import subprocess
import sys

SRC = os.environ.get("top_srcdir", ".")
BUILD = os.getcwd()
n = 0
failed = 0


def check(ok, what):
    global n, failed
    n += 1
    if not ok:
        failed += 1
    print(("ok" if ok else "not ok") + f" {n} - {what}")


def run(argv):
    p = subprocess.run(argv, capture_output=True, text=True)
    return p.stdout + p.stderr


def plain(roff):
    """The words of a man page without roff's font changes and escapes."""
    t = re.sub(r"\\f[BIRP]|\\f\(..|\\\||\\&", "", roff)
    t = t.replace("\\-", "-").replace("\\(en", "-").replace("\\e", "\\")
    return t


def literals(path, pattern):
    with open(path) as f:
        return set(re.findall(pattern, f.read()))


def command_entries(page):
    """The COMMANDS/OPTIONS entries: the line after each .TP, in plain text."""
    lines = page.splitlines()
    out = []
    for i, line in enumerate(lines[:-1]):
        if line.strip() != ".TP":
            continue
        m = re.match(r"^\.(B|I|BI|BR|IB|IR|RB|RI)\s+(.*)", lines[i + 1])
        if m is None:
            out.append(plain(lines[i + 1]))
            continue
        args = [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"|\S+', m.group(2))]
        # .B and .I join their arguments with spaces, the alternating
        # macros (.BR, .BI, ...) without
        out.append(plain((" " if len(m.group(1)) == 1 else "").join(args)))
    return out


def main():
    with open(os.path.join(SRC, "man/onceledgerd.8")) as f:
        daemon_page = f.read()
    with open(os.path.join(SRC, "man/onceledger.1")) as f:
        cli_page = f.read()
    daemon_entries = command_entries(daemon_page)
    cli_entries = command_entries(cli_page)
    daemon_text = plain(daemon_page)

    # The daemon: each setting's flag as an entry, its variable in the text.
    helptext = run([os.path.join(BUILD, "src/onceledgerd"), "--help"])
    settings = re.findall(r"^\s+(--[a-z0-9-]+)\s+(ONCELEDGER_[A-Z0-9_]+)\s", helptext, re.M)
    check(len(settings) > 30, f"onceledgerd --help lists the settings ({len(settings)})")
    flags = {f for f, _ in settings}
    flags |= literals(os.path.join(SRC, "src/onceledgerd.c"), r'"(--[a-z0-9-]+)')
    flags |= literals(os.path.join(SRC, "src/config.c"), r'"(--[a-z0-9-]+)[="]')
    for flag in sorted(flags):
        documented = any(re.match(r"(-h, ?)?" + re.escape(flag) + r"\b", e) for e in daemon_entries)
        check(documented, f"onceledgerd(8) documents {flag}")
    for _, env in settings:
        check(env in daemon_text, f"onceledgerd(8) names {env}")

    # The CLI: each subcommand of the usage text, each parsed option.
    usage = run([os.path.join(BUILD, "src/onceledger"), "--help"])
    commands = set()
    for m in re.finditer(r"^\s+onceledger ([a-z-]+)(?: ([a-z|-]+))?", usage, re.M):
        word, subs = m.group(1), m.group(2)
        if subs is None or subs.startswith("-") or word in ("migrate", "help"):
            commands.add(word)
        else:
            commands |= {f"{word} {s}" for s in subs.split("|")}
    check("migrate" in commands and "key revoke" in commands, f"onceledger --help lists the commands ({len(commands)})")
    for cmd in sorted(commands):
        documented = any(e == cmd or e.startswith(cmd + " ") or e.startswith(cmd + ",") for e in cli_entries)
        check(documented, f"onceledger(1) documents the command '{cmd}'")
    options = literals(os.path.join(SRC, "src/cli/cli_common.c"), r'"(--[a-z0-9-]+)"')
    options |= set(re.findall(r"(--[a-z0-9-]+)", usage))
    options |= literals(os.path.join(SRC, "src/cli/onceledger.c"), r'"(--[a-z0-9-]+)"')
    check(len(options) >= 7, f"the CLI's options found ({len(options)})")
    for opt in sorted(options):
        documented = any(re.match(r"(help, ?)?" + re.escape(opt) + r"\b", e) for e in cli_entries)
        check(documented, f"onceledger(1) documents {opt}")
    for env in sorted(literals(os.path.join(SRC, "src/cli/cli_common.c"), r'"(ONCELEDGER_[A-Z_]+)"')):
        check(env in plain(cli_page), f"onceledger(1) names {env}")

    # Both render without warnings.
    if shutil.which("man") is None:
        print("# skip: man(1) not installed, rendering not checked")
    else:
        for page in ("man/onceledgerd.8", "man/onceledger.1"):
            env = dict(os.environ, MANWIDTH="80")
            p = subprocess.run(["man", "-l", "--warnings", os.path.join(SRC, page)], capture_output=True,
                               text=True, env=env)
            check(p.returncode == 0 and p.stderr.strip() == "" and "\nNAME\n" in p.stdout,
                  f"man -l --warnings {page} renders cleanly{': ' + p.stderr.strip() if p.stderr.strip() else ''}")

    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
