#!/usr/bin/env python3
"""Synthesises a vulnerability database N times the shared data, from the
real records: copy k of each record gets `-s<k>` appended to its id, its
aliases and upstream ids, and every affected package name, so the index
holds N times as many distinct packages (copy 0 is the real record).

    bench/make_vulndb.py ../shared/vulndb OUT.jsonl.gz 20
"""
import gzip
import json
import sys
from pathlib import Path

FILES = ["pypi", "crates", "go", "npm", "debian-dsa-dla", "alpine", "almalinux"]


def renamed(record, k):
    if k == 0:
        return record
    r = dict(record)
    suffix = f"-s{k}"
    r["id"] = record["id"] + suffix
    for key in ("aliases", "upstream", "related"):
        if key in record:
            r[key] = [i + suffix for i in record[key]]
    affected = []
    for a in record.get("affected", []):
        a = dict(a)
        if "package" in a:
            p = dict(a["package"])
            p["name"] = p["name"] + suffix
            p.pop("purl", None)
            a["package"] = p
        affected.append(a)
    r["affected"] = affected
    return r


def main():
    src, out, copies = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    records = []
    for f in FILES:
        with gzip.open(src / f"{f}.osv.jsonl.gz", "rt") as fh:
            records.extend(json.loads(line) for line in fh if line.strip())
    n = 0
    with gzip.open(out, "wt", compresslevel=1) as fh:
        for k in range(copies):
            for r in records:
                fh.write(json.dumps(renamed(r, k), separators=(",", ":")))
                fh.write("\n")
                n += 1
    print(f"{n} records from {len(records)} real ones, {copies} copies", file=sys.stderr)


if __name__ == "__main__":
    main()
