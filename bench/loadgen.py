"""A small HTTP/1.1 load generator: standard library only, so it runs with any node's python3.

`make bench` copies it into the lab's load balancer container and runs it there, so the load reaches HAProxy on
127.0.0.1 (and, for comparison, a web node or the media server) without passing through docker's port
forwarding. It reads a JSON spec on stdin and writes one JSON document on stdout:

    {"started": <unix time>, "records": [[start_s, latency_s, status, user_index, target_index, bytes], ...],
     "errors": {"<exception> (new|reused connection)": count, ...}}   (status 0 in the records)

bytes: the response as it came over the connection (head and body, before any decompression; 0 for a failure).

Spec keys:
    targets       [{"host", "port", "tls", "path", "method"?, "headers"?, "body"?, "weight"?}, ...]
    users         [cookie header value or "" for an anonymous user, ...] (default: one anonymous user)
    connections   concurrent keep-alive connections (default 16)
    duration      seconds of load; the run stops by itself after it (default 10)
    rate          requests per second in all (open loop: each request has a scheduled start and its latency
                  counts from it, so a stall shows as latency instead of as fewer requests); 0: as fast as the
                  connections go (closed loop)
    timeout       seconds a request may take before it counts as failed (status 0; default 10)
    host_header   Host header (default: the target's host)
    requests      stop after this many requests (default: no limit; the duration still bounds the run)
    stop_file     stop early once this file exists (checked twice a second); the duration still bounds the run

Why not wrk: a run here needs a latency record per request (latency over time, with a fault marked in it) and a
session cookie per user; wrk gives neither without a Lua script per case. `make bench` measures this generator's
own ceiling in the same run (a response HAProxy makes itself) and reports it beside the stack's figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import sys
import time


class Connection:
    def __init__(self, target, timeout):
        self.target = target
        self.timeout = timeout
        self.reader = None
        self.writer = None

    async def open(self):
        context = None
        if self.target.get("tls"):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.reader, self.writer = await asyncio.open_connection(self.target["host"], self.target["port"], ssl=context)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, int]:
        reused = self.writer is not None
        if not reused:
            await self.open()
        try:
            self.writer.write(raw)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # A server may close an idle keep-alive connection without saying so (uWSGI's http-socket does after
            # each response). Nothing of the answer arrived: send it again on a new connection, once, as browsers
            # do; a new connection that fails is a failure.
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            self.close()
            await self.open()
            self.writer.write(raw)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        received = len(head)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = await self.reader.readline()
                size = int(line.split(b";")[0], 16)
                received += len(line) + len(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
        elif "content-length" in headers:
            received += len(await self.reader.readexactly(int(headers["content-length"])))
        else:
            received += len(await self.reader.read())
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, received


def build_request(target, cookie, host_header) -> bytes:
    method = target.get("method", "GET")
    body = target.get("body", "").encode()
    lines = [f"{method} {target['path']} HTTP/1.1", f"Host: {host_header or target['host']}",
             "User-Agent: django-stack-bench"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    for name, value in target.get("headers", {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(spec) -> dict:
    targets = spec["targets"]
    weights = [t.get("weight", 1) for t in targets]
    users = spec.get("users") or [""]
    connections = int(spec.get("connections", 16))
    duration = float(spec.get("duration", 10))
    rate = float(spec.get("rate", 0))
    timeout = float(spec.get("timeout", 10))
    host_header = spec.get("host_header")
    limit = int(spec.get("requests", 0)) or None
    rng = random.Random(spec.get("seed", 1))
    records = []
    errors: dict[str, int] = {}
    started_wall = time.time()
    t0 = time.monotonic()
    end = t0 + duration
    counter = 0
    stop_file = spec.get("stop_file")
    stopped = False

    async def watch():
        nonlocal stopped
        while time.monotonic() < end and not stopped:
            if os.path.exists(stop_file):
                stopped = True
                return
            await asyncio.sleep(0.5)

    def next_job():
        nonlocal counter
        index = counter
        counter += 1
        scheduled = t0 + index / rate if rate else None
        target_index = rng.choices(range(len(targets)), weights)[0]
        return index, scheduled, index % len(users), target_index

    async def worker():
        pools = {}
        while True:
            index, scheduled, user, target_index = next_job()
            if stopped or (limit is not None and index >= limit):
                break
            now = time.monotonic()
            if scheduled is not None:
                if scheduled >= end:
                    break
                if scheduled > now:
                    await asyncio.sleep(scheduled - now)
                if stopped:
                    break
            elif now >= end:
                break
            start = scheduled if scheduled is not None else time.monotonic()
            conn = pools.setdefault(target_index, Connection(targets[target_index], timeout))
            fresh = conn.writer is None
            raw = build_request(targets[target_index], users[user], host_header)
            try:
                status, received = await asyncio.wait_for(conn.request(raw), timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                conn.close()
                status, received = 0, 0
                kind = f"{type(exc).__name__} ({'new' if fresh else 'reused'} connection)"
                errors[kind] = errors.get(kind, 0) + 1
            records.append([round(start - t0, 6), round(time.monotonic() - start, 6), status, user, target_index,
                            received])
        for conn in pools.values():
            conn.close()

    watcher = asyncio.ensure_future(watch()) if stop_file else None
    await asyncio.gather(*(worker() for _ in range(connections)))
    if watcher is not None:
        watcher.cancel()
    records.sort()
    return {"started": started_wall, "duration": duration, "records": records, "errors": errors}


def main() -> int:
    spec = json.load(sys.stdin)
    result = asyncio.run(run(spec))
    json.dump(result, sys.stdout, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
