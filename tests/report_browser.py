#!/usr/bin/env python3
"""Load pages in one headless Chromium and save what the browser made of them.

  report_browser.py PROFILE_DIR PAGE.html...

For each PAGE: PAGE.dom (the DOM after the load event, as HTML) and PAGE.console (every
console message, JavaScript exception and browser log entry while it loaded, one a line;
empty when clean). Talks the DevTools protocol over --remote-debugging-pipe (NUL-separated
JSON on file descriptors 3 and 4) with the standard library only: one browser start for
all the pages, where --dump-dom would start one per page. $CHROMIUM names another binary.
"""
import json
import os
import select
import subprocess
import sys
import time

TIMEOUT = 90.0


class Browser:
    def __init__(self, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes on fd 4
        def fds():  # copies first: a pipe end may itself be fd 3 or 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
        self.proc = subprocess.Popen(
            [os.environ.get("CHROMIUM", "chromium"), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", "--mute-audio", "--remote-debugging-pipe",
             "--user-data-dir=" + profile, "about:blank"],
            preexec_fn=fds, close_fds=False,  # closing would happen after fds() moved them
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def receive(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer within %.0f s" % TIMEOUT)
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the pipe (did it crash?)")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None):
        want = self.send(method, params, session)
        deadline = time.monotonic() + TIMEOUT
        while True:
            msg = self.receive(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method, session):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method and e.get("sessionId") == session:
                    del self.events[i]
                    return e
            self.events.append(self.receive(deadline))

    def close(self):
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=20)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def messages(events, session):
    """Console lines from the events of a page's session."""
    out = []
    for e in events:
        if e.get("sessionId") != session:
            continue
        p = e.get("params", {})
        if e.get("method") == "Runtime.consoleAPICalled":
            out.append("console.%s: %s" % (p.get("type"), " ".join(
                str(a.get("value", a.get("description", ""))) for a in p.get("args", []))))
        elif e.get("method") == "Runtime.exceptionThrown":
            out.append("exception: %s" % p.get("exceptionDetails", {}).get("text"))
        elif e.get("method") == "Log.entryAdded":
            entry = p.get("entry", {})
            out.append("%s %s: %s" % (entry.get("source"), entry.get("level"), entry.get("text")))
    return out


def main(argv):
    browser = Browser(argv[1])
    try:
        for page in argv[2:]:
            target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.call("Target.attachToTarget",
                                   {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                browser.call(domain + ".enable", session=session)
            browser.events = [e for e in browser.events if e.get("sessionId") != session]
            url = "file://" + os.path.abspath(page)
            browser.call("Page.navigate", {"url": url}, session)
            browser.wait_event("Page.loadEventFired", session)
            dom = browser.call("Runtime.evaluate",
                               {"expression": "document.documentElement.outerHTML",
                                "returnByValue": True}, session)["result"]["value"]
            with open(page + ".dom", "w", encoding="utf-8") as f:
                f.write("<!DOCTYPE html>\n" + dom)
            with open(page + ".console", "w", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in messages(browser.events, session))
            browser.call("Target.closeTarget", {"targetId": target})
            browser.events = [e for e in browser.events if e.get("sessionId") != session]
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
