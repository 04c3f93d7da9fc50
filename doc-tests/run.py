#!/usr/bin/env python3
"""Runs every command shown in README.md and docs/*.md against real Stele servers.

Each Markdown file gets a fresh working directory and a fresh `stele serve` on a SQLite
database at `./stele-data/stele.db` inside it (the default path, so `stele verify` with no
flags finds it), with its API key in `KEY` and `STELE_API_KEY`. Then, in the order they
appear:

- every ```sh block of the file runs in one bash script (`set -euo pipefail`), so variables
  set by one block are seen by the next, as a reader typing them in order would have them;
- every ```js block runs with Node as an ES module beside the Node SDK suite's
  node_modules, and every ```python block with the Python SDK suite's virtualenv.

What a reader would type against their own machine is rewritten to this run's stand-ins,
and only these: `localhost:8080` and `127.0.0.1:8080` become the file's server,
`0.0.0.0:8080` a free local port, `export KEY=sk_...` the real key, WorkOS's API host a
second Stele server holding one organization (the import source), the example PostgreSQL
URLs a fresh database on STELE_TEST_POSTGRES_URL's server, and `/etc/stele/` a private
directory. A block preceded by `<!-- doc-test: background -->` starts a server: it runs in
the background until /healthz answers on its `--listen` address. A block preceded by
`<!-- doc-test: not run (REASON) -->` is skipped and listed with its reason; a shell block
with no such comment that fails fails the run.

Usage: doc-tests/run.py [FILE.md ...]   (default: README.md and docs/*.md)
Environment: STELE_BIN (the stele binary), STELE_TEST_POSTGRES_URL (optional: without it
the PostgreSQL examples fail, naming it).
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
RUN_LANGUAGES = SHELL_LANGUAGES | {"js", "python"}
DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(background|not run\s*\((?P<reason>[^)]+)\))\s*-->")
BLOCK_TIMEOUT_SECS = 180


@dataclass
class Block:
    path: Path
    line: int
    language: str
    code: str
    directive: str | None
    reason: str | None


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text().split("\n")
    found: list[Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("```"):
            index += 1
            continue
        language = line[3:].strip()
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        index += 1
        # The directive sits on one of the two lines above the fence (another marker, such
        # as a test's extraction comment, may come between).
        previous = "\n".join(lines[max(0, start - 2):start])
        match = DIRECTIVE.search(previous)
        directive = None
        reason = None
        if match:
            directive = "not run" if match.group("reason") else "background"
            reason = match.group("reason")
        found.append(Block(path, start + 1, language, "\n".join(body) + "\n", directive, reason))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(address: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{address}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"server on {address} did not become healthy:\n{log.read_text()[-3000:]}")


class Servers:
    """The Stele processes one file's examples talk to, stopped together."""

    def __init__(self, stele: str, workdir: Path):
        self.stele = stele
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, database_url: str, key: str, extra_env: dict[str, str]) -> str:
        port = free_port()
        log = self.workdir / f"{name}.log"
        env = dict(os.environ, **extra_env)
        env.update(
            STELE_LISTEN=f"127.0.0.1:{port}",
            STELE_DATABASE_URL=database_url,
            STELE_API_KEY=key,
            STELE_ADMIN_PASSWORD="doc-tests-" + secrets.token_hex(12),
        )
        process = subprocess.Popen(
            [self.stele, "serve"], cwd=self.workdir, env=env,
            stdout=log.open("w"), stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        wait_healthy(f"127.0.0.1:{port}", process, log)
        return f"127.0.0.1:{port}"

    def adopt(self, process: subprocess.Popen) -> None:
        self.processes.append(process)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def new_key() -> str:
    return "sk_doc_" + secrets.token_hex(24)


def postgres_database(created: list[str]) -> str:
    base = os.environ.get("STELE_TEST_POSTGRES_URL")
    if not base:
        raise RuntimeError("this example needs PostgreSQL: set STELE_TEST_POSTGRES_URL")
    name = "stele_doc_" + secrets.token_hex(6)
    subprocess.run(["psql", base, "-qc", f"CREATE DATABASE {name}"], check=True)
    created.append(name)
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def api(address: str, key: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://{address}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def run_file(path: Path, stele: str) -> tuple[list[str], list[str]]:
    """Runs one file's examples; returns (failures, skipped)."""
    blocks = [block for block in blocks_of(path) if block.language in RUN_LANGUAGES]
    failures: list[str] = []
    skipped = [f"{path.relative_to(ROOT)}:{b.line}: {b.reason}" for b in blocks if b.directive == "not run"]
    blocks = [block for block in blocks if block.directive != "not run"]
    if not blocks:
        return failures, skipped
    workdir = Path(tempfile.mkdtemp(prefix="stele-doc-"))
    os.chmod(workdir, 0o700)
    etc = workdir / "etc-stele"
    etc.mkdir(mode=0o700)
    # Files a reader would bring (a WorkOS CSV export, say) are in doc-tests/fixtures/.
    for fixture in (ROOT / "doc-tests" / "fixtures").iterdir():
        shutil.copy(fixture, workdir / fixture.name)
    servers = Servers(stele, workdir)
    databases: list[str] = []
    try:
        key = new_key()
        address = servers.start("server", "sqlite://./stele-data/stele.db", key, {})
        everything = "".join(block.code for block in blocks)
        substitutions = [
            ("localhost:8080", address),
            ("127.0.0.1:8080", address),
            ("port: 8080", f"port: {address.split(':')[1]}"),
            ('base_url="http://127.0.0.1:8080"', f'base_url="http://{address}"'),
            ("export KEY=sk_...", f"export KEY={key}"),
            ("export STELE_API_KEY=sk_...", f"export STELE_API_KEY={key}"),
            ("https://audit.example.com", f"http://{address}"),
            ("/etc/stele/", f"{etc}/"),
        ]
        env = dict(os.environ, KEY=key, STELE_API_KEY=key)
        env["PATH"] = f"{Path(stele).resolve().parent}:{env['PATH']}"
        if "api.workos.com" in everything:
            source_key = new_key()
            source = servers.start("import-source", "sqlite://./source-data/stele.db", source_key, {})
            # The organization the migration guide's examples name, with its WorkOS id.
            api(source, source_key, "POST", "/organizations", {"id": "org_01EHZNVPK3SFK441A1RGBFSHRT", "name": "Imported Co"})
            api(source, source_key, "POST", "/audit_logs/actions/user.signed_in/schemas", {"targets": [{"type": "team"}]})
            substitutions.append(("https://api.workos.com", f"http://{source}"))
            env["WORKOS_API_KEY"] = source_key
        for example in ("postgres://stele@db.internal:5432/stele", "postgres://stele@db/stele"):
            if example in everything:
                substitutions.append((example, postgres_database(databases)))
        if "0.0.0.0:8080" in everything:
            substitutions.append(("0.0.0.0:8080", f"127.0.0.1:{free_port()}"))

        def rewrite(code: str) -> str:
            for old, new in substitutions:
                code = code.replace(old, new)
            return code

        # An HTTP error from an example is a failure of the example, though `curl -s` alone
        # would exit 0 on it.
        script = ["set -euo pipefail", 'curl() { command curl --fail-with-body "$@"; }']
        for block in blocks:
            where = f"{path.relative_to(ROOT)}:{block.line}"
            code = rewrite(block.code)
            if block.language in SHELL_LANGUAGES and block.directive == "background":
                listen = re.search(r"--listen\s+(\S+)", code)
                if not listen:
                    raise RuntimeError(f"{where}: a background block must start a server with --listen")
                log = workdir / f"background-{block.line}.log"
                script.append(f"echo '### {where} (background)' >&2")
                script.append(f"( {code.strip()} ) >{log} 2>&1 &")
                script.append(
                    f"for _ in $(seq 1 150); do command curl -sf http://{listen.group(1)}/healthz >/dev/null && break; sleep 0.2; done; "
                    f"command curl -sf http://{listen.group(1)}/healthz >/dev/null || {{ cat {log} >&2; echo '{where}: the server did not start' >&2; exit 1; }}"
                )
            elif block.language in SHELL_LANGUAGES:
                script.append(f"echo '### {where}' >&2")
                script.append(code)
        script.append("kill $(jobs -p) 2>/dev/null || true")
        shell = subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, env=env,
                               capture_output=True, text=True, timeout=BLOCK_TIMEOUT_SECS * 3)
        if shell.returncode != 0:
            last = re.findall(r"^### (.*)$", shell.stderr, flags=re.M)
            failures.append(f"{last[-1] if last else path}: exit {shell.returncode}\n"
                            f"--- stdout ---\n{shell.stdout[-3000:]}\n--- stderr ---\n{shell.stderr[-3000:]}")
        for block in blocks:
            where = f"{path.relative_to(ROOT)}:{block.line}"
            if block.language == "js":
                # ES modules resolve packages from the file's directory, so the example is
                # written beside the Node SDK suite's node_modules.
                target = ROOT / "sdk-tests" / "node" / f".doc-example-{secrets.token_hex(4)}.mjs"
                target.write_text(rewrite(block.code))
                command = ["node", str(target)]
            elif block.language == "python":
                target = workdir / f"example-{block.line}.py"
                target.write_text(rewrite(block.code))
                command = [str(ROOT / "sdk-tests" / "python" / ".venv" / "bin" / "python"), str(target)]
            else:
                continue
            try:
                result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                                        timeout=BLOCK_TIMEOUT_SECS)
            finally:
                if block.language == "js":
                    target.unlink(missing_ok=True)
            if result.returncode != 0 or not result.stdout.strip():
                failures.append(f"{where}: exit {result.returncode}, printed {result.stdout.strip()!r}\n{result.stderr[-3000:]}")
            else:
                print(f"  {where}: {result.stdout.strip().splitlines()[-1]}")
    finally:
        servers.stop()
        base = os.environ.get("STELE_TEST_POSTGRES_URL")
        for name in databases:
            subprocess.run(["psql", base, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)
        if not failures:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  (working directory kept: {workdir})")
    return failures, skipped


def main() -> int:
    stele = os.environ.get("STELE_BIN") or shutil.which("stele")
    if not stele:
        print("doc-tests: set STELE_BIN to the stele binary", file=sys.stderr)
        return 2
    for tool in ("jq", "curl", "node"):
        if not shutil.which(tool):
            print(f"doc-tests: '{tool}' is required", file=sys.stderr)
            return 2
    files = [Path(arg).resolve() for arg in sys.argv[1:]] or [ROOT / "README.md"] + [
        Path(p) for p in sorted(glob.glob(str(ROOT / "docs" / "*.md")))
    ]
    failures: list[str] = []
    skipped: list[str] = []
    ran = 0
    for path in files:
        count = sum(1 for b in blocks_of(path) if b.language in RUN_LANGUAGES and b.directive != "not run")
        print(f"{path.relative_to(ROOT)}: {count} example(s)")
        ran += count
        file_failures, file_skipped = run_file(path, stele)
        failures += file_failures
        skipped += file_skipped
    for line in skipped:
        print(f"not run: {line}")
    if failures:
        print(f"\n{len(failures)} documentation example(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"\n{failure}", file=sys.stderr)
        return 1
    print(f"{ran} documentation example(s) ran, {len(skipped)} not run (listed with reasons)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
