"""The status page's files as the listener serves them: each with its type and the security headers, every
reference same-origin, no inline script or event handler, no markup built from data (what the browser tests in
test_status_page_browser.py exercise, checked here over the whole source)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from autoscaler.status import create_status_app
from autoscaler.status_page import ASSETS, PAGE_DIR, SECURITY_HEADERS, page_routes
from tests.autoscaler import LOOPBACK
from tests.autoscaler.test_controller import controller

SERVED = [
    ("/", "text/html; charset=utf-8", "index.html"),
    ("/page/status.js", "text/javascript; charset=utf-8", "status.js"),
    ("/page/status.css", "text/css; charset=utf-8", "status.css"),
]


@pytest.mark.parametrize(
    ("path", "media_type", "name"), SERVED, ids=[f"{path} serves {name}" for path, _, name in SERVED]
)
def test_the_listener_serves_the_page_file_with_the_security_headers(
    path: str, media_type: str, name: str
) -> None:
    loop, *_ = controller()
    response = TestClient(create_status_app(loop), base_url=LOOPBACK).get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (PAGE_DIR / name).read_bytes()
    for header, value in SECURITY_HEADERS.items():
        assert response.headers[header] == value
    assert response.headers["content-security-policy"] == (
        "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def test_every_page_file_is_served() -> None:
    assert sorted(name for name, _ in ASSETS.values()) == sorted(p.name for p in PAGE_DIR.iterdir())


class References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.handlers: list[str] = []
        self.inline_scripts = 0
        self.styles: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [value for name, value in attrs if name in ("src", "href") and value is not None]
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if "style" in found or tag == "style":
            self.styles.append(tag)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def test_the_page_loads_only_its_own_files_and_has_no_inline_script_or_style() -> None:
    parser = References()
    parser.feed((PAGE_DIR / "index.html").read_text())
    assert sorted(parser.urls) == ["page/status.css", "page/status.js"]
    assert parser.handlers == []
    assert parser.inline_scripts == 0
    assert parser.styles == [], "the policy blocks inline styles"


@pytest.mark.parametrize("name", ["status.js", "status.css", "index.html"])
def test_no_page_file_names_another_origin(name: str) -> None:
    text = (PAGE_DIR / name).read_text()
    # The one absolute URL allowed is SVG's namespace, which is a name and never fetched.
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'`)]*", text)) - {"http://www.w3.org/2000/svg"}
    assert urls == set()


def test_the_script_never_builds_markup_from_strings() -> None:
    script = (PAGE_DIR / "status.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_a_page_file_missing_from_the_image_fails_at_start_naming_it(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    with pytest.raises(FileNotFoundError) as raised:
        page_routes(tmp_path)
    assert raised.value.filename == str(tmp_path / "status.js")
