"""Writing OCI image layouts without a container engine, for the benchmarks.

A layer is written as gzip(tar) straight to disk while its two digests are
computed (the blob's, and the uncompressed tar's `diff_id`), so layers of
any size take constant memory.
"""
import gzip, hashlib, io, json, os, tarfile

def init(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

def write_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", d)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return "sha256:" + d, len(data)

def gzip_layer(layout, fill, level=1):
    """A gzip tar layer whose members `fill(tar)` adds; returns (digest, size, diff_id)."""
    tmp = os.path.join(layout, "tmp-layer")
    diff = hashlib.sha256()
    class Tee(io.RawIOBase):
        def __init__(self, f): self.f = f
        def write(self, b): diff.update(b); return self.f.write(b)
        def writable(self): return True
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level, mtime=0) as gz:
        tee = io.BufferedWriter(Tee(gz), buffer_size=1 << 20)
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            fill(tar)
        tee.flush()
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = h.hexdigest()
    final = os.path.join(layout, "blobs", "sha256", d)
    os.replace(tmp, final)
    return "sha256:" + d, os.path.getsize(final), "sha256:" + diff.hexdigest()

def image(layout, layers, tag, config=None):
    """Writes the config and manifest of an image over `layers`; returns its index descriptor."""
    config = json.dumps(dict({"architecture": "amd64", "os": "linux",
                              "rootfs": {"type": "layers", "diff_ids": [l[2] for l in layers]},
                              "config": {}}, **(config or {}))).encode()
    cd, cs = write_blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s} for d, s, _ in layers],
    }).encode()
    md, ms = write_blob(layout, manifest)
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": tag}}

def write_index(layout, descriptors):
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": descriptors}, f)
