#!/usr/bin/env python3
"""Fills a running Portcullis for bench/gc.sh, or pushes while it collects.

fill BASE TOKEN UNREFERENCED REFERENCED
    pushes UNREFERENCED small blobs no manifest names and REFERENCED blobs
    as the layers of REFERENCED/10 tagged images (10 layers each), 16 at a
    time; prints the referenced blob digests, one per line.
push BASE TOKEN SECONDS OUT
    pushes whole images (blobs, then the manifest) for SECONDS, writing each
    image's digests to OUT, one image per line.
"""
import concurrent.futures as cf
import hashlib
import http.client
import json
import os
import sys
import threading
import time

local = threading.local()


def conn(base):
    c = getattr(local, "c", None)
    if c is None:
        host = base.split("//", 1)[1]
        c = local.c = http.client.HTTPConnection(host, timeout=60)
    return c


def request(base, token, method, path, body=b"", headers=None):
    h = {"Authorization": f"Bearer {token}"}
    h.update(headers or {})
    c = conn(base)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
    return data


def push_blob(base, token, repo, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    request(base, token, "POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data,
            {"Content-Type": "application/octet-stream"})
    return d, len(data)


def push_image(base, token, repo, tag, layers):
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    c = push_blob(base, token, repo, config)
    ls = [push_blob(base, token, repo, l) for l in layers]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c[0], "size": c[1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n} for d, n in ls],
    }).encode()
    request(base, token, "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    return [c[0]] + [d for d, _ in ls]


def fill(base, token, unreferenced, referenced):
    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: push_blob(base, token, f"junk/r{i % 100}", f"junk {i} {os.urandom(8).hex()}".encode()),
                      range(unreferenced)))
        images = referenced // 10
        kept = pool.map(lambda i: push_image(base, token, f"keep/r{i % 100}", f"t{i}",
                                             [f"layer {i}.{j} {os.urandom(8).hex()}".encode() for j in range(10)]),
                        range(images))
        for digests in kept:
            for d in digests[1:]:
                print(d)


def push_during(base, token, seconds, out):
    end = time.time() + seconds
    n = 0
    with open(out, "w") as f:
        while time.time() < end:
            digests = push_image(base, token, "live/app", f"b{n}", [f"live {n}.{j} {os.urandom(8).hex()}".encode() for j in range(3)])
            f.write(" ".join(digests) + "\n")
            n += 1


if __name__ == "__main__":
    cmd, base, token = sys.argv[1:4]
    if cmd == "fill":
        fill(base, token, int(sys.argv[4]), int(sys.argv[5]))
    else:
        push_during(base, token, float(sys.argv[4]), sys.argv[5])
