#!/usr/bin/env python3
"""Streams images to a fogpipe gateway over HTTP and records every answer.

usage: http_client.py URL LIST OUT [--count N] [--concurrency C] [--timeout S]
                      [--token T] [--progress SECONDS] [--digest]

LIST holds image paths, one a line; request i posts image i mod len(LIST) to
URL/v1/detect?name=<path>. OUT gets one line per request, in request order:
"<i>\t<HTTP status, or -1 when the connection failed>\t<body on one line>".
Each of C threads keeps its own keep-alive connection (reopened after an
error). With --progress, a line on stderr every S seconds; with --digest,
OUT holds "sha256:<hex>" of each body (stripped) instead of the body, for
long runs. Exit 0 when every request got an answer (any status), 1
otherwise. Standard library only.
"""
import argparse
import hashlib
import http.client
import os
import sys
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("list")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=0, help="requests (default: one per image)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--token", default="")
    ap.add_argument("--progress", type=float, default=0)
    ap.add_argument("--digest", action="store_true")
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    paths = [l.strip() for l in open(a.list) if l.strip()]
    if not paths:
        sys.exit("http_client: no images in " + a.list)
    bodies = [open(p, "rb").read() for p in paths]
    n = a.count or len(paths)
    answers = [None] * n
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "errors": 0}

    def worker():
        conn = None
        while True:
            with lock:
                i = state["next"]
                if i >= n:
                    break
                state["next"] += 1
            k = i % len(paths)
            target = "%s/v1/detect?name=%s" % (u.path.rstrip("/"), urllib.parse.quote(paths[k], safe="/"))
            headers = {"Content-Type": "application/octet-stream"}
            if a.token:
                headers["Authorization"] = "Bearer " + a.token
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=a.timeout)
                conn.request("POST", target, body=bodies[k], headers=headers)
                r = conn.getresponse()
                body = r.read()
                if a.digest:
                    ans = (r.status, "sha256:" + hashlib.sha256(body.strip()).hexdigest())
                else:
                    ans = (r.status, body.decode("utf-8", "replace").strip().replace("\n", " "))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # the connection failed: an answer of its own kind
                ans = (-1, "%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                answers[i] = ans
                state["done"] += 1
                state["errors"] += ans[0] != 200
        if conn is not None:
            conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, a.concurrency))]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        end = time.monotonic() + (a.progress or 0.2)
        while time.monotonic() < end and any(t.is_alive() for t in threads):
            time.sleep(0.05)
        if a.progress:
            with lock:
                d, e = state["done"], state["errors"]
            el = time.monotonic() - t0
            print("http_client: %d/%d answered (%d not 200) in %.0f s: %.0f images/min"
                  % (d, n, e, el, 60 * d / el if el > 0 else 0), file=sys.stderr, flush=True)
    el = time.monotonic() - t0
    with open(a.out, "w") as f:
        for i, ans in enumerate(answers):
            s, b = ans if ans else (-1, "no answer")
            f.write("%d\t%d\t%s\n" % (i, s, b))
    ok = sum(1 for x in answers if x and x[0] == 200)
    print("http_client: %d requests, %d answered 200, in %.1f s (%.0f images/min)"
          % (n, ok, el, 60 * n / el if el > 0 else 0), file=sys.stderr)
    sys.exit(0 if all(answers) else 1)


if __name__ == "__main__":
    main()
