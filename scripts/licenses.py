#!/usr/bin/env python3
"""Every crate the workspace builds must be under a license on the allow-list (the licenses half
of `cargo deny check licenses`, which cannot be installed and fed here: its advisory half needs
the RustSec database from GitHub, and building cargo-deny costs CI minutes it does not have).

Reads `cargo metadata` (offline, from Cargo.lock), evaluates each package's SPDX expression
(`OR`, `AND`, `WITH`, parentheses) against ALLOWED, and prints every package that fails with its
expression; exit 1 if any does. A package without a license expression fails too.
"""

import json
import re
import subprocess
import sys

# Permissive licenses: the product is shipped as binaries to operators.
ALLOWED = {
    "0BSD",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSL-1.0",
    "CC0-1.0",
    "CDLA-Permissive-2.0",
    "ISC",
    "MIT",
    "MIT-0",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "Zlib",
}


def allowed(expression):
    """Whether an SPDX expression is satisfied by ALLOWED (`A OR B`: either; `A AND B`: both)."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expression.replace("/", " OR "))
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else None

    def take():
        nonlocal position
        position += 1
        return tokens[position - 1]

    def atom():
        if peek() == "(":
            take()
            value = either()
            if take() != ")":
                raise ValueError("unbalanced parentheses")
            return value
        name = take()
        if peek() == "WITH":
            take()
            take()  # an exception only ever widens what the license allows
        return name.rstrip("+") in ALLOWED

    def both():
        value = atom()
        while peek() == "AND":
            take()
            value = atom() and value
        return value

    def either():
        value = both()
        while peek() == "OR":
            take()
            value = both() or value
        return value

    result = either()
    if position != len(tokens):
        raise ValueError(f"unexpected {peek()!r}")
    return result


def main():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            stdout=subprocess.PIPE,
            check=True,
            text=True,
        ).stdout
    )
    ours = set(metadata["workspace_members"])
    failing = []
    checked = 0
    for package in metadata["packages"]:
        if package["id"] in ours:
            continue
        checked += 1
        expression = package.get("license")
        try:
            ok = bool(expression) and allowed(expression)
        except (ValueError, IndexError) as error:
            ok = False
            expression = f"{expression} (unreadable: {error})"
        if not ok:
            failing.append(f"{package['name']} {package['version']}: {expression or 'no license expression'}")
    for line in failing:
        print(f"license not allowed: {line}")
    print(f"licenses: {checked} crates checked, {len(failing)} not on the allow-list")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
