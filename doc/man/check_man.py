#!/usr/bin/env python3
"""Checks the man pages in doc/man (meson test 'man-pages').

1. Every public function (declared furing_*( in include/furing/furing.h, or
   named in lib/libfuring.map without a wildcard) appears in the NAME or
   SYNOPSIS section of some page, and has a page of its own name (the page
   itself or a .so redirect).
2. Every function a page documents in NAME exists in the header (no stale
   names), and every .so redirect points at a page that exists.
3. Every page in the directory is installed (listed in doc/man/meson.build).
4. With mandoc installed, `mandoc -Tlint -Wwarning` is clean on every page
   that is not a redirect.
Before that it checks itself: a header with one more function must fail.

Usage: check_man.py SOURCE_ROOT
"""
import os
import re
import shutil
import subprocess
import sys


def header_functions(text):
    """furing_* functions declared in a C header (comments removed)."""
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    return set(re.findall(r'\b(furing_[a-z0-9_]+)\s*\(', text))


def map_functions(text):
    """Explicit (non-wildcard) names of a version script's global lists."""
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    names = set()
    for block in re.findall(r'global:(.*?)(?:local:|\})', text, flags=re.S):
        for sym in re.findall(r'([A-Za-z_][A-Za-z0-9_*?\[\]]*)\s*;', block):
            if not any(c in sym for c in '*?['):
                names.add(sym)
    return names


def section(text, name):
    m = re.search(r'^\.SH ' + name + r'\s*\n(.*?)(?=^\.SH |\Z)', text, flags=re.S | re.M)
    return m.group(1) if m else ''


def strip_roff(text):
    text = re.sub(r'\\f[BIRP]|\\f\(..|\\f\[[^]]*\]', '', text)
    return text.replace('\\-', '-').replace('\\e', '\\')


def page_names(text):
    """(names in NAME, function names in NAME or SYNOPSIS) of a page."""
    name = ' '.join(strip_roff(section(text, 'NAME')).split())
    name_part = name.split(' - ')[0]
    in_name = {n.strip() for n in name_part.split(',') if n.strip()}
    syn = strip_roff(section(text, 'SYNOPSIS'))
    in_syn = set(re.findall(r'\b(furing_[a-z0-9_]+)\s*\(', syn))
    return in_name, in_name | in_syn


def check(mandir, functions, installed):
    """A list of problems (empty: all good)."""
    problems = []
    pages = sorted(f for f in os.listdir(mandir) if re.fullmatch(r'[a-z0-9_]+\.3', f))
    documented = set()
    named = set()
    for p in pages:
        with open(os.path.join(mandir, p)) as f:
            text = f.read()
        m = re.fullmatch(r'\.so man3/([a-z0-9_]+\.3)\n', text)
        if m:
            if not os.path.isfile(os.path.join(mandir, m.group(1))):
                problems.append(f'{p}: redirect to a missing page {m.group(1)}')
            continue
        in_name, docs = page_names(text)
        if not in_name:
            problems.append(f'{p}: no NAME section')
        named |= {n for n in in_name if n.startswith('furing_')}
        documented |= docs
    for fn in sorted(functions - documented):
        problems.append(f'{fn}: not in the NAME or SYNOPSIS of any page')
    for fn in sorted(functions - {p[:-2] for p in pages}):
        problems.append(f'{fn}: no page {fn}.3 (the page or a .so redirect)')
    for fn in sorted(named - functions):
        problems.append(f'{fn}: documented, but the header declares no such function')
    if installed is not None:
        for p in sorted(set(pages) - installed):
            problems.append(f'{p}: not installed (add it to doc/man/meson.build)')
        for p in sorted(installed - set(pages)):
            problems.append(f'{p}: installed but missing')
    return problems


def lint(mandir):
    mandoc = shutil.which('mandoc')
    if not mandoc:
        print('mandoc not found (Debian: mandoc): lint not run; coverage checked')
        return []
    problems = []
    for p in sorted(os.listdir(mandir)):
        if not p.endswith('.3'):
            continue
        path = os.path.join(mandir, p)
        with open(path) as f:
            if f.read(4) == '.so ':
                continue
        r = subprocess.run([mandoc, '-Tlint', '-Wwarning', path], capture_output=True, text=True)
        if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
            problems.append(f'{p}: mandoc -Tlint:\n{r.stdout}{r.stderr}')
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..')
    mandir = os.path.join(root, 'doc', 'man')
    with open(os.path.join(root, 'include', 'furing', 'furing.h')) as f:
        functions = header_functions(f.read())
    with open(os.path.join(root, 'lib', 'libfuring.map')) as f:
        functions |= map_functions(f.read())
    with open(os.path.join(mandir, 'meson.build')) as f:
        installed = set(re.findall(r"'([a-z0-9_]+\.3)'", f.read()))
    if len(functions) < 10:
        print(f'only {len(functions)} functions found in the header: the parser is broken')
        return 1

    # The check must be able to fail: an undocumented function is caught.
    if not any('furing_selftest_undocumented' in p
               for p in check(mandir, functions | {'furing_selftest_undocumented'}, None)):
        print('self-check failed: an undocumented function went unnoticed')
        return 1

    problems = check(mandir, functions, installed) + lint(mandir)
    for p in problems:
        print(p)
    print(f'{len(functions)} public functions, '
          f'{len([p for p in os.listdir(mandir) if p.endswith(".3")])} pages: '
          f'{"FAIL" if problems else "ok"}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
