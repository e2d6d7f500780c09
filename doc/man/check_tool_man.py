#!/usr/bin/env python3
"""Checks furing(1) against the tool (meson test 'man-furing').

1. Every long option that `furing COMMAND --help` lists, for every command
   that `furing --help` lists, has a tagged paragraph in doc/man/furing.1 (it
   is named on the line after a .TP), and every command has a section or a
   tag of its own there.
2. Every \\-\\-option the page names is one the tool knows (no stale options).
3. With mandoc installed, `mandoc -Tlint -Wwarning` is clean on the page.
Before that it checks itself: a help text with one more option must fail.

Usage: check_tool_man.py FURING_BINARY PAGE
"""
import re
import shutil
import subprocess
import sys


def help_text(binary, *args):
    r = subprocess.run([binary, *args, '--help'], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise SystemExit(f'{binary} {" ".join(args)} --help exited with {r.returncode}: {r.stderr.strip()}')
    return r.stdout + r.stderr


def commands(top_help):
    """The command names of `furing --help`'s Commands: block."""
    m = re.search(r'^Commands:\n(.*?)(?:\n\n|\Z)', top_help, flags=re.S | re.M)
    return re.findall(r'^  ([a-z][a-z-]*)\s', m.group(1), flags=re.M) if m else []


def help_options(text):
    """Long options a help text lists at the start of its option lines."""
    opts = set()
    for line in text.splitlines():
        m = re.match(r'\s+(?:-[A-Za-z], )?--([a-z][a-z0-9-]*)', line)
        if m:
            opts.add(m.group(1))
        # "--pin = on, --no-pin = off": the negated spelling, named in the text
        opts |= set(re.findall(r'(?<![\w-])--(no-[a-z][a-z0-9-]*)', line))
    return opts


def page_options(page):
    """Long options the page names: \\-\\-name, the name's dashes escaped too."""
    return {o.replace('\\-', '-') for o in re.findall(r'\\-\\-([a-z](?:[a-z0-9]|\\-)*)', page)}


def check(cmds, options, page):
    problems = []
    # (rstrip: "\-\-pin [=" leaves no dash at the end of a name)
    named = {o.rstrip('-') for o in page_options(page)}
    tags = '\n'.join(re.findall(r'^\.TP\n(.*)$', page, flags=re.M))
    tagged = {o.rstrip('-') for o in page_options(tags)}
    for cmd in cmds:
        if not re.search(r'^\.(?:TP\n\.B|SH|SS) ' + re.escape(cmd) + r'\b', page, flags=re.M | re.I):
            problems.append(f'command {cmd}: no section or tag of its own in the page')
    for cmd, opts in sorted(options.items()):
        for o in sorted(opts - tagged):
            problems.append(f'furing {cmd} --{o}: no tagged paragraph in the page')
    known = set().union(*options.values()) if options else set()
    for o in sorted(named - known):
        problems.append(f'--{o}: in the page, but no command lists it')
    return problems


def main():
    binary, page_path = sys.argv[1], sys.argv[2]
    with open(page_path) as f:
        page = f.read()
    top = help_text(binary)
    cmds = commands(top)
    if not cmds:
        print('no commands found in furing --help: the parser is broken')
        return 1
    options = {c: help_options(help_text(binary, c)) for c in cmds}
    options['furing'] = help_options(top)
    # (every command has --help; export and passthrough have many more)
    if any('help' not in v for v in options.values()) or sum(map(len, options.values())) < 20:
        print(f'too few options parsed from the help texts ({options}): the parser is broken')
        return 1
    if not any('--selftest-option' in p for p in check(cmds, dict(options, x={'selftest-option'}), page)):
        print('self-check failed: an undocumented option went unnoticed')
        return 1
    problems = check(cmds, options, page)
    mandoc = shutil.which('mandoc')
    if mandoc:
        r = subprocess.run([mandoc, '-Tlint', '-Wwarning', page_path], capture_output=True, text=True)
        if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
            problems.append(f'mandoc -Tlint:\n{r.stdout}{r.stderr}')
    else:
        print('mandoc not found (Debian: mandoc): lint not run; coverage checked')
    for p in problems:
        print(p)
    print(f'{len(cmds)} commands, {len(set().union(*options.values()))} options: {"FAIL" if problems else "ok"}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
