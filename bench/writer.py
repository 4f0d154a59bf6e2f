"""Orders placed one after another by logged-in users, through HAProxy: standard library only (a node's python3).

`make bench` runs it in the load balancer's container beside the load generator while the primary is stopped and
a replica promoted. It reads a JSON spec on stdin:

    {"users": [[cookie header, csrf token], ...], "products": [id, ...], "interval": 0.25,
     "duration": 300, "stop_file": "/var/tmp/..."}

and writes {"started": <unix time>, "records": [[t, step, status, order id or 0, seconds, error], ...]} where step
is "add" (a product into the cart) or "checkout" (the order: acknowledged when the answer is a redirect to
/orders/<id>/); status 0 means no answer, and error then says why ("timeout", or the exception's name).
It stops after the duration, or earlier once the stop file exists.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import sys
import time
import urllib.parse

ORDER = re.compile(r"/orders/(\d+)/$")


def post(path: str, cookie: str, form: dict, timeout: float = 10) -> tuple[int, str, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    body = urllib.parse.urlencode(form)
    connection = http.client.HTTPSConnection("127.0.0.1", 443, timeout=timeout, context=context)
    try:
        connection.request("POST", path, body=body, headers={
            "Host": "localhost", "Cookie": cookie, "Referer": "https://localhost/",
            "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "django-stack-bench-writer"})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or "", ""
    except TimeoutError:
        return 0, "", "timeout"
    except (OSError, http.client.HTTPException) as error:
        return 0, "", type(error).__name__
    finally:
        connection.close()


def main() -> int:
    spec = json.load(sys.stdin)
    users, products = spec["users"], spec["products"]
    interval, duration = float(spec.get("interval", 0.25)), float(spec.get("duration", 60))
    stop_file = spec.get("stop_file")
    records = []
    started_wall, t0 = time.time(), time.monotonic()
    i = 0
    while time.monotonic() - t0 < duration and not (stop_file and os.path.exists(stop_file)):
        cookie, token = users[i % len(users)]
        product = products[i % len(products)]
        i += 1
        begin = time.monotonic()
        status, _, error = post("/cart/add/", cookie, {"product": product, "csrfmiddlewaretoken": token})
        records.append([round(begin - t0, 3), "add", status, 0, round(time.monotonic() - begin, 3), error])
        if status in (301, 302, 303):
            begin = time.monotonic()
            status, location, error = post("/orders/checkout/", cookie, {"csrfmiddlewaretoken": token})
            found = ORDER.search(location)
            records.append([round(begin - t0, 3), "checkout", status, int(found.group(1)) if found else 0,
                            round(time.monotonic() - begin, 3), error])
        time.sleep(max(0.0, interval - (time.monotonic() - begin)))
    json.dump({"started": started_wall, "records": records}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
