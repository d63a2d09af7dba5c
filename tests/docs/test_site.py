"""The documentation site builds strictly and renders: a getting-started page and the API reference, in the system
Chromium (issue 29).

``mkdocs build --strict`` writes the site into a temporary folder (never build/site); ``python -m http.server``
serves it on 127.0.0.1; Playwright drives Debian's ``chromium`` (never a downloaded browser) and saves full-page
screenshots to test-output/docs/ (git-ignored; CI can keep the folder as a build artifact).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prefect_model_registry.flows.dev.server import free_port
from tests.conftest import skip_unless_ci
from tests.reaper import guard
from tests.ui.conftest import CHROMIUM_ARGS, chromium_path

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "docs"
MKDOCS = Path(sys.executable).parent / "mkdocs"
#: The link tree the API reference reads the code through (Makefile: $(LINKS)).
LINKS = "build/typecheck/prefect_model_registry/__init__.pyi"

pytestmark = pytest.mark.slow

if not MKDOCS.exists():
    skip_unless_ci(
        f"mkdocs is not installed in this venv ({MKDOCS}): pip install -e '.[docs]'", allow_module_level=True
    )


@dataclass(frozen=True)
class Site:
    """A strict build of docs/mkdocs.yml: where it went, and what mkdocs printed."""

    dir: Path
    returncode: int
    log: str
    seconds: float


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    make = subprocess.run(["make", "-C", str(ROOT), LINKS], capture_output=True, text=True, timeout=60)
    assert make.returncode == 0, f"make {LINKS} failed:\n{make.stdout}\n{make.stderr}"
    site_dir = tmp_path_factory.mktemp("docs") / "site"
    started = time.monotonic()
    build = subprocess.run(
        [str(MKDOCS), "build", "-f", str(ROOT / "docs" / "mkdocs.yml"), "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        # Material's banner about its end of life names the variable that silences it: not a build warning.
        env={**os.environ, "NO_COLOR": "1", "NO_MKDOCS_2_WARNING": "1"},
    )
    log = build.stdout + build.stderr
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "mkdocs-build.log").write_text(log, encoding="utf-8")
    return Site(site_dir, build.returncode, log, time.monotonic() - started)


def test_strict_build_has_no_warnings(site: Site) -> None:
    """``mkdocs build --strict`` succeeds and prints no WARNING line (a broken link, a docstring it cannot read)."""
    assert site.returncode == 0, f"mkdocs build --strict failed (exit {site.returncode}):\n{site.log[-6000:]}"
    plain = re.sub(r"\x1b\[[0-9;]*m", "", site.log)
    warnings = [line for line in plain.splitlines() if "WARNING" in line]
    assert not warnings, "the strict build warned:\n" + "\n".join(warnings)
    assert (site.dir / "index.html").is_file()
    for page in ("getting-started/demo", "getting-started/local-s3", "reference/api"):
        assert (site.dir / page / "index.html").is_file(), f"{page}/index.html is missing from the site"


@pytest.fixture(scope="module")
def base_url(site: Site) -> Iterator[str]:
    """The built site on ``http://127.0.0.1:<port>/``, served in its own process group."""
    if site.returncode != 0:
        pytest.fail("the site did not build: see test_strict_build_has_no_warnings", pytrace=False)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(site.dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    guard(proc.pid)  # the server dies with this process, even if pytest is killed
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    assert answer.status == 200
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"http.server did not serve {url} (exit {proc.poll()})") from None
                time.sleep(0.1)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium driven by Playwright (never a browser Playwright downloads)."""
    path = chromium_path()
    if path is None:
        skip_unless_ci("no Chromium on this machine: apt-get install chromium (`.ci/system-deps`)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        skip_unless_ci("playwright is not installed: pip install -e '.[test]'")
    expect.set_options(timeout=30_000)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tab at a desktop size; fails the test on a page error (a broken script of the theme)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


def test_getting_started_page(page: Any, base_url: str) -> None:
    """The demo page renders with its title, heading and the site navigation; full-page screenshot."""
    from playwright.sync_api import expect

    answer = page.goto(base_url + "getting-started/demo/")
    assert answer is not None and answer.status == 200
    expect(page).to_have_title(re.compile(r"demo.*prefect-model-registry", re.IGNORECASE))
    heading = page.locator("article h1").first
    expect(heading).to_be_visible()
    expect(heading).to_contain_text(re.compile("demo", re.IGNORECASE))
    # The site's navigation: the section this page belongs to, and the way to the reference.
    nav = page.locator("nav.md-nav--primary")
    expect(nav.get_by_text("Getting started", exact=True).first).to_be_attached()
    expect(nav.get_by_text("Python API", exact=True).first).to_be_attached()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=OUTPUT / "getting-started.png", full_page=True)


def test_api_reference_registry(page: Any, base_url: str) -> None:
    """The API reference shows the ``Registry`` class heading (scrolled to) and its ``register_model``."""
    from playwright.sync_api import expect

    answer = page.goto(base_url + "reference/api/")
    assert answer is not None and answer.status == 200
    expect(page).to_have_title(re.compile(r"Python API.*prefect-model-registry", re.IGNORECASE))
    # mkdocstrings' heading of the class (its id is the object's path), shown as "Registry".
    registry = page.locator("h1.doc-heading, h2.doc-heading, h3.doc-heading").filter(
        has_text=re.compile(r"^\s*(class\s+)?Registry\b")
    )
    expect(registry.first).to_be_attached()
    registry.first.scroll_into_view_if_needed()
    expect(registry.first).to_be_visible()
    expect(registry.first).to_be_in_viewport()
    method = page.locator(".doc-heading[id$='Registry.register_model']")
    expect(method.first).to_be_attached()
    expect(method.first).to_contain_text("register_model")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=OUTPUT / "api-registry-viewport.png")  # what a reader sees at the heading
    page.screenshot(path=OUTPUT / "api-registry.png", full_page=True)  # the whole reference (tall)
