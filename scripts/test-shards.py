#!/usr/bin/env python3
"""Run every test executable of the workspace, built once, in two shards at once.

`cargo test --workspace --no-run` builds the test executables with one feature resolution;
they are then run directly, as `cargo test` would (working directory and CARGO_MANIFEST_DIR
the package's), rather than through `cargo test -p …`, whose other feature resolution
rebuilds a good part of the workspace (over a minute on 2 cores, once per shard).

moto is single-threaded Python and each test binary starts its own, so one binary at a time
leaves a core idle: the two longest end-to-end binaries (the fan-out and scale tests,
moto-bound: the modules `fan_out` and `scale` of the end-to-end binary, picked by libtest's
filters) run in one shard, everything else in the other, then the doc tests. Every binary
runs whatever fails before it (no fail-fast); the exit status is 1 if any failed. Arguments
go to every test binary (`scripts/test -- --nocapture` → `--nocapture`).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

# The end-to-end binary's longest modules: run apart, in the other shard.
HEAVY = ["fan_out::", "scale::"]
E2E = ("tests/e2e", "integration")


def executables():
    """(label, path, package dir, filter arguments) of every test run, as cargo built the
    executables: the end-to-end binary twice (its heavy modules, then the rest)."""
    # The function binaries the benches' tests run (sync-slice under the local Runtime API),
    # which no test target of their own package makes cargo build.
    subprocess.run(["cargo", "build", "--workspace", "--bins", "--quiet"], check=True)
    built = subprocess.run(
        [
            "cargo",
            "test",
            "--workspace",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ],
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    found = []
    for line in built.stdout.splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("reason") != "compiler-artifact":
            continue
        path = message.get("executable")
        if not path or not message.get("profile", {}).get("test"):
            continue
        target = message["target"]
        package_dir = os.path.dirname(message["manifest_path"])
        kind = target["kind"][0]
        label = f"{os.path.relpath(package_dir)} {kind} {target['name']}"
        if kind == "test" and (package_dir.endswith(E2E[0]), target["name"]) == (True, E2E[1]):
            found.append((label + " " + " ".join(HEAVY), path, package_dir, list(HEAVY)))
            skip = [a for h in HEAVY for a in ("--skip", h)]
            found.append((label + " (the rest)", path, package_dir, skip))
        else:
            found.append((label, path, package_dir, None))
    return found


def run(binaries, args, out):
    """Run each binary in turn, writing its output to `out`; the labels of those that failed."""
    failed = []
    for label, path, package_dir, filters in binaries:
        out.write(f"\n== {label} ({os.path.relpath(path)})\n")
        out.flush()
        env = dict(os.environ, CARGO_MANIFEST_DIR=package_dir)
        status = subprocess.run(
            [path, *(filters or []), *args],
            cwd=package_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
        if status != 0:
            failed.append(label)
    return failed


def main():
    args = [a for a in sys.argv[1:] if a != "--"]
    binaries = executables()
    heavy = [b for b in binaries if b[3] == HEAVY]
    light = [b for b in binaries if b[3] != HEAVY]
    start = time.time()
    results = {}
    with tempfile.TemporaryFile("w+") as log:

        def heavy_shard():
            results["heavy"] = run(heavy, args, log)

        thread = threading.Thread(target=heavy_shard)
        thread.start()
        results["light"] = run(light, args, sys.stdout)
        sys.stdout.write("\n== doc tests\n")
        sys.stdout.flush()
        doc = subprocess.run(["cargo", "test", "--workspace", "--doc", "--quiet"]).returncode
        thread.join()
        log.seek(0)
        sys.stdout.write(f"\n== the end-to-end shard ({' '.join(HEAVY)}):\n")
        sys.stdout.write(log.read())
    failed = results["light"] + results["heavy"] + (["doc tests"] if doc != 0 else [])
    print(
        f"\n== {len(binaries)} test runs and the doc tests in {time.time() - start:.0f} s; "
        + ("all passed" if not failed else "FAILED: " + "; ".join(failed))
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
