"""A real HTTP server on 127.0.0.1 for download tests (serves, corrupts, drops, 404s)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class FileServer:
    """Serve ``files`` (path -> bytes). Special paths:

    - ``/drop/NAME``: announces the full Content-Length of NAME, sends half, closes.
    - ``/slow/NAME``: sends NAME in 8 pieces with a pause between them.
    - ``/nolen/NAME``: sends NAME without a Content-Length (the end is the connection closing).
    - ``/nolen-drop/NAME``: the same, but closes after half of NAME (a cut nobody can see).
    - ``/stall/NAME``: sends half of NAME, then waits (for a client killed mid-download).
    - anything else missing: 404.
    ``hits`` counts requests per path.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.hits[self.path] = server.hits[self.path] + 1
                mode, _, name = self.path.lstrip("/").partition("/")
                if mode not in ("drop", "slow", "nolen", "nolen-drop", "stall"):
                    mode, name = "plain", self.path.lstrip("/")
                body = server.files.get(name)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if mode.startswith("nolen"):
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body if mode == "nolen" else body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "stall":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    time.sleep(30)
                    return
                if mode == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if mode == "slow":
                    step = max(1, len(body) // 8)
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i : i + step])
                        self.wfile.flush()
                        time.sleep(0.05)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # shutdown() waits for the loop's next poll: 0.5 s by default, at the end of every test
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(files: dict[str, bytes]) -> Iterator[FileServer]:
    with FileServer(files) as srv:
        yield srv
