"""Test helpers shared by the unit and end-to-end tests: polling, a webhook receiver."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def wait_for(pred: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll until `pred()` is truthy and return it; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Receiver:
    """Listens on 127.0.0.1; answers 500 to the first `fail_first` POSTs, then 200.

    ``requests`` holds (headers with lower-case names, body, status sent) in arrival order.
    """

    def __init__(self, fail_first: int = 0):
        self.requests: list[tuple[dict, bytes, int]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rec.lock:
                    code = 500 if len(rec.requests) < rec.fail_first else 200
                    rec.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
