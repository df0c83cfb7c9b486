"""Headless Chromium driven over the DevTools protocol (a websocket, tornado's client): open a page at a given
window size, measure it with JavaScript, take a screenshot. For what a person sees: widths, alignment, layout.

The pages under test run no script of their own (their Content-Security-Policy forbids it); `evaluate` runs in the
DevTools' own context, which no page policy restricts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("headless Chromium is needed: run scripts/system-deps (apt-get install chromium)")
    return found


class Browser:
    def __init__(self, work: Path, *, width: int = 1400, height: int = 900, offline: bool = True):
        self.work, self.width, self.height = work, width, height
        work.mkdir(parents=True, exist_ok=True)
        command = [
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={work / 'profile'}",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
        ]
        if offline:  # a dead proxy: a page that fetches from the network gets nothing (local servers excepted)
            command += ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost"]
        if os.geteuid() == 0:
            command.append("--no-sandbox")
        self.proc = subprocess.Popen(
            [*command, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.loop = asyncio.new_event_loop()
        self._id = 0
        self._events: list[dict] = []
        try:
            self._connect(work / "profile" / "DevToolsActivePort")
        except BaseException:  # never leave a Chromium behind when it could not be driven
            self.close()
            raise

    def _connect(self, port_file: Path) -> None:
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
            page = next(t for t in json.loads(answer.read()) if t["type"] == "page")
        from tornado.websocket import websocket_connect

        async def connect() -> Any:
            return await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=2**28)

        self.ws = self.loop.run_until_complete(connect())
        self.send("Page.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def send(self, method: str, **params: Any) -> dict:
        self._id += 1
        ask = self._id

        async def call() -> dict:
            await self.ws.write_message(json.dumps({"id": ask, "method": method, "params": params}))
            while True:
                message = json.loads(await asyncio.wait_for(self.ws.read_message(), 120))
                if message.get("id") == ask:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})
                self._events.append(message)

        return self.loop.run_until_complete(call())

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._events.clear()
        self.send("Page.navigate", url=url)

        async def loaded() -> None:
            while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
                self._events.append(json.loads(await asyncio.wait_for(self.ws.read_message(), 120)))

        self.loop.run_until_complete(loaded())

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 90) -> Any:
        """Poll a JavaScript expression until it is truthy (a page that renders after load: JupyterLab)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"never true: {expression[:120]}")

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            height = int(self.evaluate("document.documentElement.scrollHeight"))
            params |= {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1},
            }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", **params)["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # the browser and its helpers (its own session)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if not self.loop.is_closed():
            self.loop.close()


@contextlib.contextmanager
def browser(work: Path, **kw: Any) -> Iterator[Browser]:
    opened = Browser(work, **kw)
    try:
        yield opened
    finally:
        opened.close()


# Measures every table on a page: its width against the window's, and how its cells are aligned. Numbers are right
# aligned, text left; a text column is wide enough to read (not one word a line).
MEASURE_TABLES = """
(() => {
  const doc = document.documentElement;
  const tables = [...document.querySelectorAll('table')].map(t => {
    const r = t.getBoundingClientRect();
    const cells = [...t.querySelectorAll('tbody td')].map(td => ({
      column: td.cellIndex,
      text: td.innerText.trim(),
      align: getComputedStyle(td).textAlign,
      width: td.getBoundingClientRect().width,
      height: td.getBoundingClientRect().height,
      lines: (() => { const range = document.createRange(); range.selectNodeContents(td);
                      return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size; })(),
    }));
    const heads = [...t.querySelectorAll('thead th')].map(th => th.innerText.trim());
    return {left: r.left, right: r.right, width: r.width, heads, cells,
            scrolls: t.parentElement.scrollWidth > t.parentElement.clientWidth + 1};
  });
  return {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, innerWidth: window.innerWidth, tables};
})()
"""
