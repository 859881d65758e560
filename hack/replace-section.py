#!/usr/bin/env python3
"""Replace (or, with --check, verify) the text between <!-- BEGIN NAME --> and <!-- END NAME --> in a file."""
import sys

args = sys.argv[1:]
check = False
if args and args[0] == "--check":
    check, args = True, args[1:]
if len(args) != 3:
    sys.exit("usage: replace-section.py [--check] FILE NAME CONTENT_FILE")
path, name, content_path = args
text = open(path).read()
content = open(content_path).read()
begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
try:
    i = text.index(begin) + len(begin)
    j = text.index(end, i)
except ValueError:
    sys.exit(f"{path}: markers {begin} / {end} not found")
new = text[:i] + "\n" + content.rstrip("\n") + "\n" + text[j:]
if check:
    if new != text:
        sys.exit(f"{path}: section {name} is stale; run `make docs` and commit the result")
    sys.exit(0)
open(path, "w").write(new)
