#!/usr/bin/env python3
"""Packs directories as the gzip layers of one OCI image, without a container engine.

usage: make_scan_image.py LAYOUT TAG DIR...   (each DIR is one layer, bottom first)

Entries are written in sorted order with their modes, owners and link
targets; device nodes are kept as tar records.
"""
import os, sys

from ocilayout import gzip_layer, image, init, write_index

def tree(root):
    """A `fill` for gzip_layer: the directory tree under `root`."""
    def fill(tar):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = os.path.join(dirpath, name)
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, root))
                if info is None:
                    continue  # sockets
                info.mtime = 0
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return fill

def main():
    layout, tag, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    init(layout)
    layers = [gzip_layer(layout, tree(d), level=6) for d in dirs]
    env = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    write_index(layout, [image(layout, layers, tag, {"config": env})])

main()
