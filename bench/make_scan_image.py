#!/usr/bin/env python3
"""Packs directories as the gzip layers of one OCI image, without a container engine.

usage: make_scan_image.py LAYOUT TAG DIR...   (each DIR is one layer, bottom first)

Entries are written in sorted order with their modes, owners and link
targets; device nodes are kept as tar records.
"""
import gzip, hashlib, io, json, os, sys, tarfile

def write_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)

def layer(layout, root):
    tmp = os.path.join(layout, "tmp-layer")
    diff = hashlib.sha256()
    class Tee(io.RawIOBase):
        def __init__(self, f): self.f = f
        def write(self, b): diff.update(b); return self.f.write(b)
        def writable(self): return True
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        tee = io.BufferedWriter(Tee(gz), buffer_size=1 << 20)
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for name in sorted(dirnames) + sorted(filenames):
                    path = os.path.join(dirpath, name)
                    arc = os.path.relpath(path, root)
                    info = tar.gettarinfo(path, arcname=arc)
                    if info is None:
                        continue  # sockets
                    info.mtime = 0
                    if info.isreg():
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
        tee.flush()
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = h.hexdigest()
    os.replace(tmp, os.path.join(layout, "blobs", "sha256", d))
    return "sha256:" + d, os.path.getsize(os.path.join(layout, "blobs", "sha256", d)), "sha256:" + diff.hexdigest()

def main():
    layout, tag, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    layers = [layer(layout, d) for d in dirs]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [l[2] for l in layers]},
                         "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}}).encode()
    cd, cs = write_blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s} for d, s, _ in layers],
    }).encode()
    md, ms = write_blob(layout, manifest)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)

main()
