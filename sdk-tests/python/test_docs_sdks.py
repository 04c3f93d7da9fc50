"""docs/sdks.md: the Python program shown there, extracted from the page as it is, runs
against this server on the SDK version the page tells people to install and prints what
the page says it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "sdks.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", PAGE, flags=re.MULTILINE | re.DOTALL)


def test_the_page_names_the_installed_sdk_version() -> None:
    assert set(re.findall(r"pip install workos==([0-9.]+)", PAGE)) == {version("workos")}


def test_the_python_program_runs_and_prints_a_line(base_url: str, api_key: str, server_reachable: None) -> None:
    programs = blocks("python")
    assert len(programs) == 1, "one Python program on the page"
    env = {**os.environ, "STELE_URL": base_url, "STELE_API_KEY": api_key}
    env.pop("WORKOS_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", programs[0]], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{programs[0]}\n--- stderr ---\n{done.stderr}"
    assert re.fullmatch(r"Connected to Stele: \d+ organizations on the first page\n", done.stdout), done.stdout
