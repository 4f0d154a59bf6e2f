"""The load generator against a server on loopback: it records each response's size on the wire (what compressed
pages are measured by), for a Content-Length body and for a chunked one."""

import asyncio
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen  # noqa: E402
from bench.stats import summary  # noqa: E402

BODY = b"x" * 5000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (BODY[:3000], BODY[3000:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        body = BODY[:100] if self.headers.get("Accept-Encoding") == "gzip" else BODY
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_records_carry_the_bytes_received():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        target = {"host": "127.0.0.1", "port": port, "tls": False}
        result = asyncio.run(loadgen.run({
            "targets": [{**target, "path": "/plain"},
                        {**target, "path": "/plain", "headers": {"Accept-Encoding": "gzip"}},
                        {**target, "path": "/chunked"}],
            "connections": 2, "duration": 5, "requests": 60}))
    finally:
        server.shutdown()
    records = result["records"]
    assert len(records) == 60 and not result["errors"]
    plain, packed, chunked = (summary(records, target=i) for i in range(3))
    assert plain["requests"] and packed["requests"] and chunked["requests"]
    # Head and body: the body's 5000 bytes (or 100), plus a head of under 200 bytes.
    assert 5000 < plain["bytes_p50"] < 5200
    assert 100 < packed["bytes_p50"] < 300
    # Chunked: the body and its framing (two chunk-size lines, the last chunk and the CRLFs).
    assert 5000 + 20 < chunked["bytes_p50"] < 5300
