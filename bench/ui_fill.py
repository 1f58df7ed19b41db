#!/usr/bin/env python3
"""Fills a running Portcullis for bench/ui.sh: N images in one repository,
each its own config (so its own digest, scan and tag) over one shared
layer, tagged build-00000 … build-N, 16 at a time.

ui_fill.py BASE TOKEN REPO N
"""
import concurrent.futures as cf
import json
import sys

from gc_fill import push_blob, request


def push(base, token, repo, layer, i):
    config = json.dumps({"architecture": "amd64", "os": "linux", "build": i,
                         "history": [{"created_by": f"RUN make build-{i}"}]}).encode()
    c = push_blob(base, token, repo, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c[0], "size": c[1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer[0], "size": layer[1]}],
    }).encode()
    request(base, token, "PUT", f"/v2/{repo}/manifests/build-{i:05d}", manifest,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})


def main():
    base, token, repo, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    # One small tar layer: a package database the scanner reads once.
    import io, tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b'{"name": "left-pad", "version": "1.3.0"}'
        info = tarfile.TarInfo("app/node_modules/left-pad/package.json")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    layer = push_blob(base, token, repo, buf.getvalue())
    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: push(base, token, repo, layer, i), range(n)))


if __name__ == "__main__":
    main()
