"""The upload page used as a person uses it: headless Chromium against the local stack.

Playwright for Python drives Debian's ``chromium`` (``executable_path``; it
never downloads a browser of its own: `make browser` installs the package).
The stack is ``python -m local.run`` as tests/test_local_stack.py starts it;
the page comes through the local front at the API's own routes, uploads go
through the presigned POST straight to the emulator's bucket (a CORS
preflight first, because the page listens to upload progress), and each
file's state comes from polling the API. Every page load records console
errors and CSP violations; a test fails on any.

The JWT case starts a second stack with ``api_jwt_issuer`` set: an https://
issuer on 127.0.0.1 whose self-signed certificate the stack trusts
(``SSL_CERT_FILE``), so the local front verifies tokens as API Gateway does.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from local.emulator import free_port
from local.tf import REPO_ROOT
from tests.conftest import require_terraform
from tests.images import rgba_png
from tests.test_front_jwt import AUDIENCE, Issuer
from tests.test_local_stack import DEFAULTS, DONE_TIMEOUT, RunningStack, start_stack

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

require_terraform("the browser tests")

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
PHOTO = REPO_ROOT / "examples" / "photo.jpg"
SCREENSHOT = REPO_ROOT / "build" / "upload-page.png"
RENDITIONS = sorted((d["name"], f) for d in DEFAULTS for f in d["formats"])
DONE_MS = DONE_TIMEOUT * 1000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}
TIMES = "\u00d7"  # the page writes sizes as 640x480 with a multiplication sign


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: `make browser` installs Debian's chromium (or set CHROMIUM)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make venv` installs requirements-dev.txt", pytrace=False)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, lambda_zip):
    running = start_stack(tmp_path_factory.mktemp("browser-stack"), free_port(), free_port())
    try:
        yield running
    finally:
        running.stop()


class Opened:
    """A page of the upload site in a fresh tab, with what its console said."""

    def __init__(self, browser, stack: RunningStack, viewport: dict) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.goto(f"{stack.api}/")
        self.ready()

    def ready(self) -> None:
        """Once the limits from GET /limits are on the page (no wait_for_function: the CSP forbids eval)."""
        self.page.locator("#accepted", has_text="Accepted:").wait_for()

    def item(self, name: str):
        """The newest upload of that name (the list shows the newest first)."""
        return self.page.locator("li.upload", has=self.page.locator(".upload-name", has_text=name)).first

    def state_of(self, name: str, state: str):
        """Wait until the file's state reads ``state``; returns its list item."""
        item = self.item(name)
        item.locator(f".state-{state}").wait_for(timeout=DONE_MS)
        return item

    def close(self, expected: tuple[str, ...] = ()) -> None:
        self.context.close()
        unexpected = [p for p in self.problems if not any(e in p for e in expected)]
        assert not unexpected, unexpected  # no script error, no CSP violation


@pytest.fixture
def opened(browser, stack):
    pages: list[Opened] = []

    def open_page(viewport: dict = DESKTOP) -> Opened:
        pages.append(Opened(browser, stack, viewport))
        return pages[-1]

    yield open_page
    for page in pages:
        page.close()


def record(stack: RunningStack, image_id: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{stack.api}/images/{image_id}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def without_query(url: str) -> str:
    return urlsplit(url)._replace(query="").geturl()


def check_renditions_shown(item, body: dict) -> None:
    """Every rendition the API lists is on the page: a loaded image, its name, format, size, bytes, link."""
    assert sorted((r["name"], r["format"]) for r in body["renditions"]) == RENDITIONS
    cards = item.locator("li.rendition")
    assert cards.count() == len(RENDITIONS)
    for i, rendition in enumerate(body["renditions"]):
        card = cards.nth(i)
        text = card.inner_text()
        assert f"{rendition['name']} · {rendition['format'].upper()}" in text
        assert f"{rendition['width']}{TIMES}{rendition['height']} px" in text
        assert f"{rendition['bytes']:,} bytes" in text
        image = card.locator("img")
        assert image.evaluate("img => img.complete && img.naturalWidth") == rendition["width"]
        # The same object (each GET presigns anew: the signature and its time differ).
        assert without_query(card.get_by_role("link").get_attribute("href")) == without_query(
            rendition["url"]
        )


def announced(page, text: str) -> None:
    """``text`` reaches the aria-live region. The page clears it and writes the new text 50 ms
    later (a fresh text node, so screen readers announce a repeated message too), so it is waited
    for, as a screen reader hears it, not read at once."""
    from playwright.sync_api import expect

    expect(page.locator("#announcer")).to_contain_text(text, timeout=5_000)


def test_a_photo_picked_uploads_with_progress_and_all_its_renditions_appear(opened, stack):
    tab = opened(DESKTOP)
    page = tab.page
    page.set_input_files("#files", str(PHOTO))
    item = tab.item("photo.jpg")
    progress = item.locator("progress")
    item.locator(".state-pending, .state-processing, .state-done").first.wait_for(timeout=DONE_MS)
    assert progress.evaluate("p => p.value") == 100  # the XHR's upload progress reached the end
    tab.state_of("photo.jpg", "done")
    body = record(stack, item.get_attribute("data-image-id"))
    assert body["status"] == "done"
    assert body["original"]["key"].endswith("/photo.jpg")
    check_renditions_shown(item, body)
    announced(page, "photo.jpg: done")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


def test_a_text_file_named_jpg_shows_the_apis_error(opened, stack):
    """The browser calls it image/jpeg (its extension); the pipeline reads its bytes and refuses it."""
    tab = opened()
    text = b"These are meeting notes, not a photo.\n" * 20
    tab.page.set_input_files(
        "#files", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": text}]
    )
    item = tab.state_of("notes.jpg", "failed")
    error = record(stack, item.get_attribute("data-image-id"))["error"]
    assert error["code"] == "not_an_image"
    assert item.locator(".message").inner_text() == f"{error['message']} ({error['code']})"
    announced(tab.page, "notes.jpg: failed")


def test_several_files_at_once_on_a_360px_screen(opened, stack):
    tab = opened(PHONE)
    page = tab.page
    page.set_input_files(
        "#files",
        files=[
            {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": PHOTO.read_bytes()},
            {"name": "logo.png", "mimeType": "image/png", "buffer": rgba_png()},
            {"name": "readme.txt", "mimeType": "text/plain", "buffer": b"not an image"},
        ],
    )
    # Refused in the page, before any request, with the accepted types read from GET /limits.
    refused = tab.state_of("readme.txt", "refused").locator(".message").inner_text()
    assert refused.startswith("text/plain is not an accepted format; accepted: image/avif, image/gif")
    for name in ("photo.jpg", "logo.png"):
        item = tab.state_of(name, "done")
        check_renditions_shown(item, record(stack, item.get_attribute("data-image-id")))
    # Readable at 360 px: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_an_image_dropped_on_the_page_uploads(opened, stack):
    tab = opened()
    page = tab.page
    dropped = page.evaluate_handle(
        """bytes => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
            return data;
        }""",
        list(rgba_png((120, 80))),
    )
    page.dispatch_event("#picker", "dragover", {"dataTransfer": dropped})
    assert "over" in page.locator("#picker").get_attribute("class")  # the drop zone shows it
    page.dispatch_event("#picker", "drop", {"dataTransfer": dropped})
    item = tab.state_of("dropped.png", "done")
    check_renditions_shown(item, record(stack, item.get_attribute("data-image-id")))


def test_an_api_without_the_presigned_route_gets_the_direct_upload(browser, stack):
    """An API Gateway with no POST /uploads answers 404 {"message":"Not Found"}: the page posts to /images."""
    tab = Opened(browser, stack, DESKTOP)
    page = tab.page
    presign = f"{stack.api}/uploads"
    page.route(
        lambda url: url == presign,
        lambda route: route.fulfill(
            status=404, content_type="application/json", body='{"message":"Not Found"}'
        ),
    )
    with page.expect_request(lambda r: r.method == "POST" and r.url == f"{stack.api}/images"):
        page.set_input_files("#files", str(PHOTO))
    item = tab.state_of("photo.jpg", "done")
    check_renditions_shown(item, record(stack, item.get_attribute("data-image-id")))
    tab.close(expected=("404 (Not Found)",))


def test_the_page_works_from_the_keyboard_alone(opened):
    tab = opened()
    page = tab.page
    choosers = []
    page.on(
        "filechooser", lambda chooser: choosers.append(chooser)
    )  # interception is on before any key is pressed
    focused = []
    for _ in range(5):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
        if focused[-1] == "files":
            break
    assert focused[-1] == "files", focused  # the file picker is reachable by Tab
    assert page.locator("#files").evaluate("i => i.labels[0].textContent") == "Choose images"
    page.keyboard.press("Space")
    for _ in range(100):  # the picker opens: Playwright hands over its dialog
        if choosers:
            break
        page.wait_for_timeout(100)
    assert choosers, "Space on the focused file input opened no file chooser"
    choosers[0].set_files(str(PHOTO))
    item = tab.state_of("photo.jpg", "done")
    assert item.locator("li.rendition").count() == len(RENDITIONS)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").startswith("Open ")  # rendition links


def test_a_file_over_the_apis_limit_is_refused_in_the_page(opened, stack, tmp_path):
    limit = requests.get(f"{stack.api}/limits", timeout=30).json()["max_presigned_bytes"]
    big = tmp_path / "huge.png"
    with big.open("wb") as out:
        out.truncate(limit + 1)
    tab = opened()
    tab.page.set_input_files("#files", str(big))
    message = tab.state_of("huge.png", "refused").locator(".message").inner_text()
    assert message == f"The file is {limit + 1:,} bytes; this service takes at most {limit:,} bytes (50 MiB)."


# -- JWT ---------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, the certificate its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgpipe test issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "issuer.pem", directory / "issuer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def jwt_stack(tmp_path_factory, lambda_zip):
    """A stack with api_auth = "jwt", its issuer an https:// server on 127.0.0.1."""
    state_dir = tmp_path_factory.mktemp("browser-jwt-stack")
    cert, key = self_signed(state_dir)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    issuer = Issuer(tls)
    tf_vars = {"api_jwt_issuer": issuer.url, "api_jwt_audience": [AUDIENCE]}
    running = start_stack(state_dir, free_port(), free_port(), tf_vars=tf_vars, SSL_CERT_FILE=str(cert))
    try:
        yield running, issuer
    finally:
        running.stop()
        issuer.stop()


class TestWithJwt:
    """A class of its own: under `make test` (--dist loadscope) its stack is applied on another
    worker while the open stack above serves the module's other tests (tests/conftest.py)."""

    def test_the_page_asks_for_a_token_and_explains_a_401(self, browser, jwt_stack):
        check_the_page_asks_for_a_token_and_explains_a_401(browser, jwt_stack)


def check_the_page_asks_for_a_token_and_explains_a_401(browser, jwt_stack):
    stack, issuer = jwt_stack
    # The page and its limits are open; the upload routes are not.
    assert requests.get(f"{stack.api}/limits", timeout=30).json()["auth"] == "jwt"
    assert requests.post(f"{stack.api}/uploads", json={}, timeout=30).status_code == 401
    tab = Opened(browser, stack, DESKTOP)
    page = tab.page
    token_box = page.get_by_role("textbox", name="Token")
    assert token_box.is_visible()
    page.set_input_files("#files", str(PHOTO))
    message = tab.state_of("photo.jpg", "failed").locator(".message").inner_text()
    assert message.startswith("This service needs a sign-in token (401 Unauthorized)")

    token_box.fill(issuer.token(sub="browser-user"))
    page.reload()  # kept for the tab: still there after a reload
    tab.ready()
    assert page.get_by_role("textbox", name="Token").input_value().startswith("eyJ")
    page.set_input_files("#files", str(PHOTO))
    item = tab.state_of("photo.jpg", "done")
    body = record(stack, item.get_attribute("data-image-id"), issuer.token(sub="browser-user"))
    check_renditions_shown(item, body)
    # Another subject does not see it (the API's rule), so the page's polling used the token.
    other = requests.get(
        f"{stack.api}/images/{body['id']}",
        headers={"Authorization": f"Bearer {issuer.token(sub='someone-else')}"},
        timeout=30,
    )
    assert other.status_code == 404

    page.get_by_role("textbox", name="Token").fill(issuer.token(exp=1))  # expired
    page.set_input_files("#files", str(PHOTO))
    refused = tab.page.locator("li.upload .state-failed").first
    refused.wait_for(timeout=DONE_MS)
    assert "refused the token (401 Unauthorized)" in page.locator("li.upload .message").first.inner_text()
    # Chromium logs each 401 response as a console error; anything else fails the test.
    tab.close(expected=("401 (Unauthorized)",))
