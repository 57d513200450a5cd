#!/usr/bin/python3
"""The web page of `facekit serve` (share/web/) driven in a real headless Chromium against a real server.

    /usr/bin/python3 tests/browser/test_page.py [-v]          # or: python3 -m unittest tests/browser/test_page.py

Needs Debian's chromium, chromium-driver and python3-selenium; exits 77 (skipped) without them. Environment:
  FACEKIT_BIN          the facekit binary (default: build/facekit beside this checkout)
  FACEKIT_SCREENSHOTS  where the PNG screenshots of every step go (default: a new temporary folder, printed)
  FACEKIT_CHROMIUM, FACEKIT_CHROMEDRIVER   the browser and its driver (default /usr/bin/chromium, /usr/bin/chromedriver)

The server is started on a free port with a gallery in a temporary folder (`serve --port 0 --port-file`); its
first start writes the admin key to GALLERY.admin-key, which the test types into the page as a person would;
other keys come from `facekit keys create/revoke` on the same gallery. Photos: Debian libdlib19.1's examples (a
test whose photo is absent skips) and a face-less PNG written here. The webcam test feeds Chromium a Y4M video
(--use-file-for-fake-video-capture) made from a real photo with python3-opencv, or, without it, decoded and
composed on a canvas by Chromium itself. Screenshots: one PNG per step, and one on a failure (with the browser's
console and the server's log on stderr). The last line says 'browser: N passed, N failed, N skipped'.
"""
import base64
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import unittest
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FACES = pathlib.Path("/usr/share/doc/libdlib19.1/examples/faces")
DEMO = ROOT / "models" / "face-api" / "demo"
TOM = FACES / "Tom_Cruise_avp_2014_4.jpg"        # one face: the person enrolled
STRANGER = FACES / "2008_001009.jpg"              # one face, someone else
GROUP = FACES / "bald_guys.jpg"                   # 24 faces: refused for enrolment

CHROMIUM = os.environ.get("FACEKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACEKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
FACEKIT_BIN = os.environ.get("FACEKIT_BIN", str(ROOT / "build" / "facekit"))
READY_TIMEOUT_S = 180
ACTION_TIMEOUT_S = 120  # a request doing model work on a loaded 2-core machine
SKIP_EXIT = 77

PERSON = "Tom Cruise"
RENAMED = 'Thomas <Mapother> & "co" / AC/DC'  # markup in a name shows as text, never as HTML; '/' is one path segment

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    HAVE_SELENIUM = True
except ImportError:  # pragma: no cover - depends on the machine
    HAVE_SELENIUM = False


def missing_tools():
    """Why this test cannot run here, or None."""
    if not HAVE_SELENIUM:
        return "python3-selenium is not installed"
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            return f"{tool} is not installed (Debian: chromium chromium-driver)"
    return None


def write_faceless_png(path, w=320, h=240):
    """A photo with no face in it: a colour gradient, written as PNG with the standard library alone.
    (dogs.jpg is no good for this: the detector takes a dog's head for a face.)"""
    import struct
    import zlib
    rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // w, y * 255 // h, 96)) for x in range(w)) for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    pathlib.Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                                   + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return pathlib.Path(path)


def need(*photos):
    for p in photos:
        if not pathlib.Path(p).is_file():
            raise unittest.SkipTest(f"photo {p} is absent")


# ---- screenshots ---------------------------------------------------------------------------------------------
_shots = []
_shot_no = [0]


def shots_dir():
    """FACEKIT_SCREENSHOTS, else a temporary folder made on first use (and kept: it is the test's output)."""
    if not _shots:
        _shots.append(pathlib.Path(os.environ.get("FACEKIT_SCREENSHOTS") or tempfile.mkdtemp(prefix="facekit-screens-")))
        _shots[0].mkdir(parents=True, exist_ok=True)
    return _shots[0]


def snap(driver, name):
    if driver is None:
        return None
    _shot_no[0] += 1
    path = shots_dir() / f"{_shot_no[0]:02d}-{name}.png"
    try:
        driver.save_screenshot(str(path))
    except Exception as e:  # a dead browser must not hide the real failure
        print(f"screenshot {path.name} failed: {e}", file=sys.stderr)
        return None
    return path


def dump_console(driver):
    try:
        for entry in driver.get_log("browser"):
            print(f"  [console {entry.get('level')}] {entry.get('message')}", file=sys.stderr)
    except Exception:
        pass


# ---- the server ----------------------------------------------------------------------------------------------
class Server:
    """`facekit serve` on a free port with a fresh gallery; stopped by stop()."""

    def __init__(self):
        if not os.access(FACEKIT_BIN, os.X_OK):
            raise RuntimeError(f"no facekit binary at {FACEKIT_BIN} (build it, or set FACEKIT_BIN)")
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="facekit-web-"))
        self.gallery = self.tmp / "gallery.db"
        self.faceless = write_faceless_png(self.tmp / "no-face.png")
        self.port_file = self.tmp / "port"
        self.log_path = self.tmp / "server.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [FACEKIT_BIN, "serve", "--host", "127.0.0.1", "--port", "0", "--gallery", str(self.gallery),
             "--port-file", str(self.port_file)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def log_tail(self, n=4000):
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"facekit serve exited with {self.proc.returncode}:\n{self.log_tail()}")

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        self.port = None
        while self.port is None:
            self._check_alive()
            try:
                text = self.port_file.read_text().strip()
                if text:
                    self.port = int(text)
            except (OSError, ValueError):
                pass
            if self.port is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no port in {self.port_file} after {READY_TIMEOUT_S} s:\n{self.log_tail()}")
                time.sleep(0.2)
        self.base = f"http://127.0.0.1:{self.port}"
        last = None
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=10) as r:
                    if r.status == 200:
                        break
            except urllib.error.HTTPError as e:
                last = f"{e.code} {e.read()[:200]!r}"
            except OSError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise RuntimeError(f"/readyz not 200 after {READY_TIMEOUT_S} s (last: {last}):\n{self.log_tail()}")
            time.sleep(0.5)
        key_file = pathlib.Path(str(self.gallery) + ".admin-key")
        if not key_file.is_file():
            raise RuntimeError(f"the first start wrote no {key_file}:\n{self.log_tail()}")
        self.key_mode = stat.S_IMODE(key_file.stat().st_mode)
        self.admin_key = key_file.read_text().strip()

    def request(self, method, path, body=None, content_type=None):
        """A direct API call (set-up and clean-up around what the page does): (status, parsed JSON or text)."""
        req = urllib.request.Request(self.base + path, data=body, method=method, headers={"x-api-key": self.admin_key})
        if content_type:
            req.add_header("content-type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=ACTION_TIMEOUT_S) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data

    def keys(self, *args):
        """`facekit keys ARGS --gallery GALLERY` beside the running server; answers its stdout."""
        r = subprocess.run([FACEKIT_BIN, "keys", *args, "--gallery", str(self.gallery)], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"facekit keys {' '.join(args)}: exit {r.returncode}: {r.stderr}")
        return r.stdout

    def create_key(self, name, scopes):
        return json.loads(self.keys("create", "--name", name, "--scopes", scopes, "--json"))["key"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- the browser ---------------------------------------------------------------------------------------------
def start_chromium(extra_args=()):
    profile = tempfile.mkdtemp(prefix="facekit-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,1000", *extra_args):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except WebDriverException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.set_page_load_timeout(60)
    driver.facekit_profile = profile
    return driver


def quit_chromium(driver):
    if driver is None:
        return
    try:
        driver.quit()
    finally:
        shutil.rmtree(driver.facekit_profile, ignore_errors=True)


SERVER = None


def setUpModule():
    global SERVER
    why = missing_tools()
    if why:
        raise unittest.SkipTest(why)
    print(f"screenshots: {shots_dir()}", file=sys.stderr)
    SERVER = Server()
    print(f"facekit serve at {SERVER.base} (gallery {SERVER.gallery})", file=sys.stderr)


def tearDownModule():
    global SERVER
    if SERVER is not None:
        SERVER.stop()
        SERVER = None
    print(f"screenshots: {shots_dir()}", file=sys.stderr)


def step(name):
    """Screenshot after the step, or on its failure (then also the browser's console)."""
    def wrap(fn):
        def run(self, *a, **kw):
            try:
                fn(self, *a, **kw)
            except unittest.SkipTest:
                raise
            except BaseException:
                snap(self.driver, f"{name}-FAILED")
                dump_console(self.driver)
                if SERVER is not None:
                    print(f"  [server log tail]\n{SERVER.log_tail(2000)}", file=sys.stderr)
                raise
            snap(self.driver, name)
        run.__name__ = fn.__name__
        run.__doc__ = fn.__doc__
        return run
    return wrap


class PageCase(unittest.TestCase):
    """What both browser sessions share: helpers that act on the page as a person would."""
    driver = None

    # -- waiting and reading
    def wait(self, cond, what, timeout=ACTION_TIMEOUT_S):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(lambda d: cond())
        except TimeoutException:
            self.fail(f"timed out after {timeout} s waiting for {what}; error area: {self.error_text()!r}")

    def by_id(self, id_):
        return self.driver.find_element(By.ID, id_)

    def css(self, selector, root=None):
        return (root or self.driver).find_elements(By.CSS_SELECTOR, selector)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def error_text(self):
        try:
            err = self.by_id("error")
            return err.text if err.is_displayed() else ""
        except Exception:
            return "?"

    def scroll_to(self, id_):
        """Brings a section to the top of the window (below the sticky bar), for the screenshot."""
        self.js("document.getElementById(arguments[0]).scrollIntoView({block: 'start', behavior: 'instant'});"
                "window.scrollBy({top: -64, behavior: 'instant'});", id_)

    def click(self, element):
        """Clicks as a person would, the element first scrolled to the middle of the window (no smooth scroll)."""
        if isinstance(element, str):
            element = self.by_id(element)
        self.js("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
        element.click()

    def dismiss_error(self):
        if self.by_id("error").is_displayed():
            self.click("error-close")

    # -- acting
    def open_page(self):
        self.driver.get(SERVER.base + "/")
        self.wait(lambda: self.js("return !!(window.facekitPage && window.facekitPage.ready)"), "the page's script")

    def enter_key(self, key):
        if not self.by_id("key-panel").is_displayed():
            self.click("key-change")
        field = self.by_id("api-key")
        field.clear()
        field.send_keys(key)
        self.click("key-save")
        self.wait(lambda: self.by_id("key-status").get_attribute("data-state") not in ("checking",), "the key check")

    def seq(self, id_):
        """How many actions the status line id_ has seen finish (its data-seq)."""
        return int(self.by_id(id_).get_attribute("data-seq") or 0)

    def identify_photo(self, photo):
        self.scroll_to("identify")
        before = self.seq("identify-status")
        self.by_id("identify-file").send_keys(str(photo))
        self.wait(lambda: self.seq("identify-status") > before, f"the identification of {pathlib.Path(photo).name}")
        return self.identify_rows()

    def identify_rows(self):
        rows = []
        for tr in self.css("#identify-rows tr[data-testid=identify-row]"):
            rows.append({
                "subject": tr.get_attribute("data-subject"),
                "unknown": tr.get_attribute("data-unknown") == "true",
                "liveness": tr.get_attribute("data-liveness"),
                "name": self.css("[data-testid=identify-name]", tr)[0].text,
                "similarity": self.css("[data-testid=identify-similarity]", tr)[0].text,
                "liveness_text": self.css("[data-testid=identify-liveness]", tr)[0].text,
            })
        return rows

    def enrol(self, name, photos):
        """Enrols the photos under name through the page; answers the new result rows (one per photo)."""
        self.scroll_to("enrol")
        before = len(self.css("#enrol-rows tr"))
        field = self.by_id("enrol-name")
        field.clear()
        field.send_keys(name)
        if photos:
            self.by_id("enrol-files").send_keys("\n".join(str(p) for p in photos))
        frames = len(self.css("#enrol-frames [data-testid=enrol-frame]"))
        expected = before + len(photos) + frames
        self.click("enrol-submit")
        self.wait(lambda: len(self.css("#enrol-rows tr")) >= expected
                  and not self.css("#enrol-rows tr[data-state=busy]")
                  and not self.by_id("enrol-submit").get_attribute("disabled"), "the enrolment answers")
        rows = []
        for tr in self.css("#enrol-rows tr")[: expected - before]:
            detail = self.css("[data-testid=enrol-detail]", tr)[0].text
            rows.append({"file": self.css("[data-testid=enrol-file]", tr)[0].text,
                         "state": tr.get_attribute("data-state"), "verdict": tr.get_attribute("data-verdict"),
                         "duplicate": tr.get_attribute("data-duplicate") == "true",
                         "status": tr.get_attribute("data-status"), "detail": detail, "text": tr.text})
        return rows

    def people(self):
        """{name: element} of the people list once it has loaded."""
        self.wait(lambda: self.by_id("people-status").get_attribute("data-state") in ("loaded", "error"),
                  "the people list")
        return {li.get_attribute("data-subject"): li for li in self.css("#people-list li[data-testid=person]")}

    def refresh_people(self):
        self.scroll_to("people")
        before = self.seq("people-status")
        self.click("people-refresh")
        self.wait(lambda: self.seq("people-status") > before, "the people list")
        return self.people()

    def thumbs_loaded(self, li):
        return self.js("return Array.from(arguments[0].querySelectorAll('img[data-testid=thumb]'))"
                       ".map(i => i.complete ? i.naturalWidth : -1)", li)


class Test1Page(PageCase):
    """The whole page in one browser session, step by step (a step that needs an earlier one skips when it failed)."""
    failed = set()

    @classmethod
    def setUpClass(cls):
        cls.driver = start_chromium()

    @classmethod
    def tearDownClass(cls):
        quit_chromium(cls.driver)
        cls.driver = None
        # leave the gallery empty for the next browser session whatever happened here
        if SERVER is not None:
            SERVER.request("DELETE", "/api/v1/recognition/subjects")

    def needs(self, *steps):
        for s in steps:
            if s in self.failed:
                self.skipTest(f"needs step {s}, which failed")

    def run(self, result=None):
        failures = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            type(self).failed.add(self._testMethodName)
        return out

    @step("01-no-key")
    def test_01_first_visit_asks_for_the_key(self):
        self.open_page()
        self.assertTrue(self.by_id("key-panel").is_displayed())
        self.assertEqual(self.by_id("key-status").get_attribute("data-state"), "none")
        self.assertIn("Enter an API key", self.by_id("key-message").text)

    @step("02-wrong-key")
    def test_02_a_wrong_key_shows_the_401_message(self):
        self.enter_key("not-a-real-key-0123456789")
        self.assertEqual(self.by_id("key-status").get_attribute("data-state"), "unauthorized")
        message = self.by_id("key-message")
        self.assertTrue(message.is_displayed())
        self.assertIn("401", message.text)
        self.assertIn("not accepted", message.text)
        self.assertTrue(self.by_id("error").is_displayed(), "the error area shows the 401 too")
        self.assertIn("401", self.by_id("error").text)

    @step("03-key")
    def test_03_the_admin_key_is_accepted_and_kept(self):
        self.assertEqual(SERVER.key_mode, 0o600, "GALLERY.admin-key must be mode 0600")
        self.enter_key(SERVER.admin_key)
        status = self.by_id("key-status")
        self.assertEqual(status.get_attribute("data-state"), "ok", self.error_text())
        self.assertIn("admin", status.text)
        self.assertFalse(self.by_id("error").is_displayed())
        self.assertFalse(self.by_id("key-panel").is_displayed(), "the key form folds away once the key works")
        self.assertIn("0 people", self.by_id("status-line").text)
        # entered once per browser: a reload needs no typing
        self.open_page()
        self.wait(lambda: self.by_id("key-status").get_attribute("data-state") == "ok", "the kept key's check")
        self.wait(lambda: self.seq("people-status") > 0, "the people list")
        self.people()
        self.assertTrue(self.by_id("people-empty").is_displayed())

    @step("04-enrol")
    def test_04_enrol_one_photo_and_see_the_refusals(self):
        self.needs("test_03_the_admin_key_is_accepted_and_kept")
        need(TOM, GROUP)
        rows = self.enrol(PERSON, [TOM, GROUP, SERVER.faceless])
        self.assertEqual([r["file"] for r in rows], [TOM.name, GROUP.name, SERVER.faceless.name], rows)
        tom, group, faceless = rows
        self.assertEqual(tom["state"], "ok", tom)
        self.assertIn(tom["verdict"], ("good", "fair", "poor"), tom)
        badge = self.css(f"#enrol-rows tr[data-state=ok] [data-testid=enrol-verdict]")
        self.assertTrue(badge and badge[0].is_displayed() and badge[0].text == tom["verdict"])
        for refused in (group, faceless):
            self.assertEqual(refused["state"], "error", refused)
            self.assertTrue(refused["detail"].strip(), f"a refusal shows the problem's detail: {refused}")
            self.assertTrue(refused["status"].startswith("4"), refused)
        self.assertIn("1 person", self.by_id("status-line").text)

    @step("05-identify-known")
    def test_05_identify_the_enrolled_person(self):
        self.needs("test_04_enrol_one_photo_and_see_the_refusals")
        rows = self.identify_photo(TOM)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["subject"], PERSON)
        self.assertEqual(rows[0]["name"], PERSON)
        self.assertFalse(rows[0]["unknown"])
        self.assertGreater(float(rows[0]["similarity"]), 0.0)
        self.assertIn(rows[0]["liveness"], ("live", "spoof", "uncertain"), "face_plugins=liveness answers liveness")
        self.assertTrue(self.by_id("identify-canvas").is_displayed())
        w, h = self.js("const c = document.getElementById('identify-canvas'); return [c.width, c.height]")
        self.assertEqual((w, h), (565, 800), "the canvas holds the photo at its own size")

    @step("06-identify-stranger")
    def test_06_identify_a_stranger_is_unknown(self):
        need(STRANGER)
        rows = self.identify_photo(STRANGER)
        self.assertGreaterEqual(len(rows), 1, rows)
        for r in rows:
            self.assertTrue(r["unknown"], r)
            self.assertEqual(r["name"], "unknown")

    @step("07-identify-no-face")
    def test_07_identify_a_photo_without_a_face(self):
        rows = self.identify_photo(SERVER.faceless)
        self.assertEqual(rows, [])
        self.assertIn("No face", self.by_id("identify-status").text)

    @step("08-people")
    def test_08_people_list_shows_the_person_with_a_thumbnail(self):
        self.needs("test_04_enrol_one_photo_and_see_the_refusals")
        people = self.refresh_people()
        self.assertEqual(list(people), [PERSON])
        li = people[PERSON]
        self.assertEqual(li.get_attribute("data-faces"), "1")
        self.wait(lambda: self.thumbs_loaded(li) and all(w != -1 for w in self.thumbs_loaded(li)), "the thumbnail")
        widths = self.thumbs_loaded(li)
        self.assertEqual(len(widths), 1)
        self.assertGreater(widths[0], 0, "the thumbnail is a decodable image")
        src = self.js("return arguments[0].querySelector('img[data-testid=thumb]').src", li)
        self.assertTrue(src.startswith("blob:"), src)

    @step("09-rename")
    def test_09_rename(self):
        self.needs("test_08_people_list_shows_the_person_with_a_thumbnail")
        li = self.people()[PERSON]
        self.click(self.css("[data-testid=rename]", li)[0])
        field = self.css("[data-testid=rename-input]", li)[0]
        field.clear()
        field.send_keys(RENAMED)
        self.click(self.css("[data-testid=rename-save]", li)[0])
        self.wait(lambda: RENAMED in self.people() or self.by_id("error").is_displayed(), "the renamed person")
        self.assertFalse(self.by_id("error").is_displayed(), self.error_text())
        people = self.people()
        self.assertEqual(list(people), [RENAMED])
        self.assertEqual(self.css("[data-testid=person-name]", people[RENAMED])[0].text, RENAMED)
        self.assertEqual(self.css("#people-list mapother"), [], "a name's markup is text, not HTML")
        self.wait(lambda: (w := self.thumbs_loaded(people[RENAMED])) and all(x > 0 for x in w),
                  "the thumbnail under the new name")
        rows = self.identify_photo(TOM)
        self.assertEqual([r["name"] for r in rows], [RENAMED])
        self.assertEqual(self.css("#identify-rows mapother"), [])

    @step("10-verify-same")
    def test_10_verify_the_same_person(self):
        need(TOM)
        verdict = self.verify(TOM, TOM)
        self.assertEqual(verdict["same"], "true", verdict)
        self.assertEqual(verdict["verdict"], "Same person")
        self.assertGreater(float(verdict["similarity"]), float(verdict["threshold"]))

    @step("11-verify-different")
    def test_11_verify_two_people(self):
        need(TOM, STRANGER)
        verdict = self.verify(TOM, STRANGER)
        self.assertEqual(verdict["same"], "false", verdict)
        self.assertEqual(verdict["verdict"], "Different people")
        self.assertLess(float(verdict["similarity"]), float(verdict["threshold"]))

    def verify(self, a, b):
        self.scroll_to("verify")
        self.by_id("verify-source").send_keys(str(a))
        self.by_id("verify-target").send_keys(str(b))
        self.click("verify-submit")
        box = self.by_id("verify-result")
        self.wait(lambda: box.get_attribute("data-state") in ("done", "none", "error"), "the verification")
        self.assertEqual(box.get_attribute("data-state"), "done", self.error_text())
        return {"same": box.get_attribute("data-same"), "verdict": self.by_id("verify-verdict").text,
                "similarity": self.by_id("verify-similarity").text, "threshold": self.by_id("verify-threshold").text}

    @step("12-delete")
    def test_12_delete_after_confirming(self):
        self.needs("test_08_people_list_shows_the_person_with_a_thumbnail")
        people = self.refresh_people()
        self.assertEqual(len(people), 1, list(people))
        li = next(iter(people.values()))
        self.click(self.css("[data-testid=delete]", li)[0])
        confirm = self.css("[data-testid=person-confirm]", li)[0]
        self.assertTrue(confirm.is_displayed(), "deleting asks first")
        self.assertIn("Delete", confirm.text)
        snap(self.driver, "12-delete-confirm")
        self.click(self.css("[data-testid=delete-cancel]", li)[0])
        self.assertEqual(len(self.people()), 1, "cancel keeps the person")
        self.click(self.css("[data-testid=delete]", li)[0])
        self.click(self.css("[data-testid=delete-confirm]", li)[0])
        self.wait(lambda: self.by_id("people-empty").is_displayed() or self.by_id("error").is_displayed(),
                  "the empty list")
        self.assertFalse(self.by_id("error").is_displayed(), self.error_text())
        self.assertEqual(self.people(), {})
        status, answer = SERVER.request("GET", "/api/v1/recognition/subjects")
        self.assertEqual((status, answer), (200, {"subjects": []}))
        rows = self.identify_photo(TOM)
        self.assertEqual([r["name"] for r in rows], ["unknown"], "a deleted person is no longer recognised")

    @step("13-revoked-key")
    def test_13_a_key_revoked_meanwhile_shows_401_on_use(self):
        """A key that worked is revoked (facekit keys revoke): the next action shows the 401 in the error area."""
        key = SERVER.create_key("page-reader", "read")
        self.enter_key(key)
        self.assertEqual(self.by_id("key-status").get_attribute("data-state"), "ok", self.error_text())
        self.assertIn("page-reader", self.by_id("key-status").text)
        SERVER.keys("revoke", "page-reader")
        self.dismiss_error()
        self.click("people-refresh")
        self.wait(lambda: self.by_id("error").is_displayed(), "the error area")
        self.scroll_to("error")
        self.assertIn("401", self.by_id("error").text)
        self.assertTrue(self.by_id("key-panel").is_displayed(), "a 401 opens the key form")

    @step("14-recognize-only-key")
    def test_14_a_key_without_read_scope_shows_403(self):
        need(TOM)
        key = SERVER.create_key("door", "recognize")
        self.enter_key(key)
        self.assertEqual(self.by_id("key-status").get_attribute("data-state"), "forbidden")
        self.assertIn("403", self.by_id("key-message").text)
        rows = self.identify_photo(TOM)  # what the key may do still works
        self.assertEqual([r["name"] for r in rows], ["unknown"], self.error_text())
        rows = self.enrol(PERSON, [TOM])
        self.assertEqual(rows[0]["state"], "error", rows)
        self.assertEqual(rows[0]["status"], "403", rows)
        self.assertTrue(self.by_id("error").is_displayed())
        self.assertIn("403", self.by_id("error").text)
        snap(self.driver, "14-recognize-only-key-enrol")
        self.enter_key(SERVER.admin_key)
        self.assertEqual(self.by_id("key-status").get_attribute("data-state"), "ok")


# ---- the webcam ----------------------------------------------------------------------------------------------
W, H, FRAMES = 640, 480, 24
# (scale of the photo's height against the frame's, x shift, y shift) of each distinct frame
VARIANTS = [(1.0, 0, 0), (0.96, -20, 6), (0.92, 24, 10), (1.0, 40, 0), (0.95, -40, 8), (0.9, 0, 24)]


def frames_with_cv2(photo):
    import cv2  # python3-opencv; absent: frames_in_browser
    import numpy as np
    img = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    out = []
    for scale, dx, dy in VARIANTS:
        f = H * scale / img.shape[0]
        small = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
        canvas = np.full((H, W, 3), 40, np.uint8)
        x0, y0 = (W - small.shape[1]) // 2 + dx, (H - small.shape[0]) // 2 + dy
        xs, ys = max(0, x0), max(0, y0)
        xe, ye = min(W, x0 + small.shape[1]), min(H, y0 + small.shape[0])
        canvas[ys:ye, xs:xe] = small[ys - y0:ye - y0, xs - x0:xe - x0]
        out.append(cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes())
    return out


def frames_in_browser(photo):
    """Without OpenCV: Chromium decodes and composes the frames on a canvas; numpy makes I420 of its RGBA."""
    import numpy as np
    driver = start_chromium()
    try:
        driver.get("about:blank")
        driver.set_script_timeout(60)
        data = base64.b64encode(pathlib.Path(photo).read_bytes()).decode()
        rgba = driver.execute_async_script("""
            const [data, W, H, variants, done] = arguments;
            const img = new Image();
            img.onerror = () => done({error: 'the photo could not be decoded'});
            img.onload = () => {
              const c = document.createElement('canvas'); c.width = W; c.height = H;
              const ctx = c.getContext('2d');
              const out = [];
              for (const [scale, dx, dy] of variants) {
                const f = H * scale / img.naturalHeight;
                const w = Math.round(img.naturalWidth * f), h = Math.round(img.naturalHeight * f);
                ctx.fillStyle = 'rgb(40,40,40)'; ctx.fillRect(0, 0, W, H);
                ctx.drawImage(img, Math.floor((W - w) / 2) + dx, Math.floor((H - h) / 2) + dy, w, h);
                const px = ctx.getImageData(0, 0, W, H).data;
                let s = '';
                for (let i = 0; i < px.length; i += 0x8000) s += String.fromCharCode.apply(null, px.subarray(i, i + 0x8000));
                out.push(btoa(s));
              }
              done(out);
            };
            img.src = 'data:image/jpeg;base64,' + data;
        """, data, W, H, VARIANTS)
    finally:
        quit_chromium(driver)
    if isinstance(rgba, dict):
        raise RuntimeError(rgba.get("error"))
    out = []
    for b64 in rgba:
        px = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(H, W, 4)[:, :, :3].astype(np.float32)
        r, g, b = px[..., 0], px[..., 1], px[..., 2]
        # BT.601 studio range, as OpenCV's COLOR_BGR2YUV_I420
        y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
        u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
        v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
        sub = lambda p: p.reshape(H // 2, 2, W // 2, 2).mean(axis=(1, 3))
        planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, sub(u), sub(v))]
        out.append(b"".join(p.tobytes() for p in planes))
    return out


def write_y4m(path, frames):
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(FRAMES):
            frame = frames[i % len(frames)]
            assert len(frame) == W * H * 3 // 2
            f.write(b"FRAME\n")
            f.write(frame)


class Test2Webcam(PageCase):
    """The camera path: Chromium's fake camera plays a Y4M made from a photo of the enrolled person."""

    @classmethod
    def setUpClass(cls):
        need(TOM)
        cls.tmp = pathlib.Path(tempfile.mkdtemp(prefix="facekit-y4m-"))
        try:
            import cv2  # noqa: F401
            frames = frames_with_cv2(TOM)
            how = "OpenCV"
        except ImportError:
            frames = frames_in_browser(TOM)
            how = "Chromium's canvas (no python3-opencv)"
        cls.video = cls.tmp / "camera.y4m"
        write_y4m(cls.video, frames)
        print(f"fake camera: {cls.video} ({FRAMES} frames of {W}x{H} made with {how})", file=sys.stderr)
        cls.driver = start_chromium(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                     f"--use-file-for-fake-video-capture={cls.video}"])

    @classmethod
    def tearDownClass(cls):
        quit_chromium(cls.driver)
        cls.driver = None
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if SERVER is not None:
            SERVER.request("DELETE", "/api/v1/recognition/subjects")

    @step("20-webcam-identify")
    def test_1_camera_frame_identifies_the_enrolled_person(self):
        self.open_page()
        self.enter_key(SERVER.admin_key)
        self.assertEqual(self.by_id("key-status").get_attribute("data-state"), "ok", self.error_text())
        rows = self.enrol(PERSON, [TOM])
        self.assertEqual([r["state"] for r in rows], ["ok"], rows)
        self.scroll_to("camera")
        self.click("camera-start")
        self.wait(lambda: self.js("const v = document.getElementById('camera-video');"
                                  "return v.readyState >= 2 && v.videoWidth > 0") or self.error_text(),
                  "the camera's first frame", timeout=30)
        self.assertEqual(self.error_text(), "")
        self.assertEqual(self.js("return document.getElementById('camera-video').videoWidth"), W)
        snap(self.driver, "20-webcam-on")
        before = self.seq("identify-status")
        self.click("camera-identify")
        self.wait(lambda: self.seq("identify-status") > before, "the identification of a camera frame")
        self.scroll_to("identify")
        rows = self.identify_rows()
        self.assertEqual([r["name"] for r in rows], [PERSON], self.error_text())
        self.assertIn("camera frame", self.by_id("identify-status").text)
        w, h = self.js("const c = document.getElementById('identify-canvas'); return [c.width, c.height]")
        self.assertEqual((w, h), (W, H))

    @step("21-webcam-enrol")
    def test_2_camera_frames_enrol(self):
        if not self.js("return !!document.getElementById('camera-video').srcObject"):
            self.skipTest("the camera did not start")
        self.scroll_to("camera")
        self.click("camera-enrol")
        self.wait(lambda: len(self.css("#enrol-frames [data-testid=enrol-frame]")) == 1, "the captured frame")
        self.click("camera-enrol")
        self.wait(lambda: len(self.css("#enrol-frames [data-testid=enrol-frame]")) == 2, "the second frame")
        self.assertIn("2 camera frames", self.by_id("enrol-picked").text)
        rows = self.enrol(PERSON, [])
        self.assertEqual(len(rows), 2, rows)
        for r in rows:
            self.assertTrue(r["file"].startswith("camera-frame-"), r)
            self.assertEqual(r["state"], "ok", r)
            self.assertIn(r["verdict"], ("good", "fair", "poor"), r)
        # two frames may be the same picture of the looping video: the server keeps one (duplicate: true)
        added = sum(not r["duplicate"] for r in rows)
        self.assertGreaterEqual(added, 1, rows)
        people = self.refresh_people()
        self.assertEqual(people[PERSON].get_attribute("data-faces"), str(1 + added))
        self.scroll_to("camera")
        self.click("camera-stop")
        self.assertTrue(self.by_id("camera-start").is_enabled())


def main():
    why = missing_tools()
    if why:
        print(f"SKIP: {why}", file=sys.stderr)
        return SKIP_EXIT
    verbosity = 2 if "-v" in sys.argv[1:] else 1
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stderr).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = max(0, result.testsRun - failed - skipped)
    print(f"browser: {passed} passed, {failed} failed, {skipped} skipped")
    if failed:
        return 1
    return SKIP_EXIT if passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
