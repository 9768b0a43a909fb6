#!/usr/bin/env python3
"""The fleet's load: a bounded load spread over the pods, each pod according to its role,
every answer counted by pod, route and code, as sidemeter names routes.

    fleet_load.py SECONDS POD=ROLE:PORT ...

Roles: healthy (a page, and ids that are not there: 404), slow (answers after 1.5 s),
failing (one request in five answered 503), appdown and sidecardown (whatever comes back).
Prints one JSON object: {"answers": {pod: {"METHOD CODE ROUTE": n}}, "refused": {pod: n}}.
"""
import http.client
import json
import random
import sys
import threading
import time

secs = float(sys.argv[1])
pods = []
for arg in sys.argv[2:]:
    pod, rest = arg.split("=", 1)
    role, port = rest.split(":")
    pods.append((pod, role, int(port)))

answers = {p: {} for p, _, _ in pods}
refused = {p: 0 for p, _, _ in pods}
lock = threading.Lock()


def pick(role, rng):
    """(path asked, route sidemeter will name it)"""
    if role == "slow":
        return ("/slow?ms=1500", "/slow") if rng.random() < 0.5 else ("/index.html", "/index.html")
    if role == "failing":
        return ("/status/503", "/status/:id") if rng.random() < 0.2 else ("/index.html", "/index.html")
    if rng.random() < 0.1:
        n = rng.randrange(1000, 9999)
        return ("/api/items/%d?token=secret" % n, "/api/items/:id")
    return ("/index.html", "/index.html")


def run(pod, role, port, seed):
    rng = random.Random(seed)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        path, route = pick(role, rng)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
        except OSError:
            with lock:
                refused[pod] += 1
            time.sleep(0.2)
            continue
        key = "GET %d %s" % (r.status, route)
        with lock:
            answers[pod][key] = answers[pod].get(key, 0) + 1
        time.sleep(0.02)


threads = [threading.Thread(target=run, args=(p, r, port, i * 10 + k))
           for i, (p, r, port) in enumerate(pods) for k in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"answers": answers, "refused": refused}, sort_keys=True))
