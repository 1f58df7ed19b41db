#!/usr/bin/env python3
"""Writes the benchmark's OCI layouts without a container engine.

big/:   one image, tag `big`, of N gzip layers of random bytes (128 MiB each
        before compression; random data does not compress, so ~128 MiB each).
small/: one image per tag `s0`..`s{n-1}`, each a small unique gzip layer.
"""
import io, os, sys, tarfile

from ocilayout import gzip_layer, image, init, write_index

def one_file(name, payload_iter, size):
    """A `fill` for gzip_layer: one file streamed from an iterator of chunks."""
    def fill(tar):
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
    return fill

def main():
    out, layers, layer_mib, small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    big = os.path.join(out, "big")
    if not os.path.exists(os.path.join(big, "index.json")):
        init(big)
        ls = []
        for i in range(layers):
            chunks = (os.urandom(1 << 20) for _ in range(layer_mib))
            ls.append(gzip_layer(big, one_file(f"layer{i}.bin", chunks, layer_mib << 20)))
        write_index(big, [image(big, ls, "big")])
    sm = os.path.join(out, "small")
    if not os.path.exists(os.path.join(sm, "index.json")):
        init(sm)
        descs = []
        for i in range(small):
            payload = os.urandom(16 << 10)
            ls = [gzip_layer(sm, one_file(f"file{i}", iter([payload]), len(payload)))]
            descs.append(image(sm, ls, f"s{i}"))
        write_index(sm, descs)

main()
