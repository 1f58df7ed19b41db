#!/usr/bin/env python3
"""Writes the benchmark's OCI layouts without a container engine.

big/:   one image, tag `big`, of N gzip layers of random bytes (128 MiB each
        before compression; random data does not compress, so ~128 MiB each).
small/: one image per tag `s0`..`s{n-1}`, each a small unique gzip layer.
"""
import gzip, hashlib, io, json, os, sys, tarfile

def write_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", d)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return "sha256:" + d, len(data)

def write_blob_file(layout, tmp):
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = h.hexdigest()
    os.replace(tmp, os.path.join(layout, "blobs", "sha256", d))
    return "sha256:" + d, os.path.getsize(os.path.join(layout, "blobs", "sha256", d))

def init(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

def image(layout, layers, tag):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [l[2] for l in layers]},
                         "config": {}}).encode()
    cd, cs = write_blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s} for d, s, _ in layers],
    }).encode()
    md, ms = write_blob(layout, manifest)
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": tag}}

def tar_gz_layer(layout, name, payload_iter, size):
    """A real tar.gz layer holding one file, streamed to disk; returns (digest, size, diff_id)."""
    tmp = os.path.join(layout, "tmp-layer")
    diff = hashlib.sha256()
    class Tee(io.RawIOBase):
        def __init__(self, f): self.f = f
        def write(self, b): diff.update(b); return self.f.write(b)
        def writable(self): return True
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
        tee = io.BufferedWriter(Tee(gz), buffer_size=1 << 20)
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(name); info.size = size; info.mtime = 0
            class Src(io.RawIOBase):
                def __init__(self): self.it = payload_iter; self.buf = b""
                def readable(self): return True
                def readinto(self, b):
                    while not self.buf:
                        try: self.buf = next(self.it)
                        except StopIteration: return 0
                    n = min(len(b), len(self.buf)); b[:n] = self.buf[:n]; self.buf = self.buf[n:]; return n
            tar.addfile(info, io.BufferedReader(Src(), 1 << 20))
        tee.flush()
    d, s = write_blob_file(layout, tmp)
    return d, s, "sha256:" + diff.hexdigest()

def main():
    out, layers, layer_mib, small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    big = os.path.join(out, "big")
    if not os.path.exists(os.path.join(big, "index.json")):
        init(big)
        ls = []
        for i in range(layers):
            chunks = (os.urandom(1 << 20) for _ in range(layer_mib))
            ls.append(tar_gz_layer(big, f"layer{i}.bin", chunks, layer_mib << 20))
        with open(os.path.join(big, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [image(big, ls, "big")]}, f)
    sm = os.path.join(out, "small")
    if not os.path.exists(os.path.join(sm, "index.json")):
        init(sm)
        descs = []
        for i in range(small):
            payload = os.urandom(16 << 10)
            ls = [tar_gz_layer(sm, f"file{i}", iter([payload]), len(payload))]
            descs.append(image(sm, ls, f"s{i}"))
        with open(os.path.join(sm, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": descs}, f)

main()
