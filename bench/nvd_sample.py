#!/usr/bin/env python3
"""Which NVD records bench/data/nvd-bench.jsonl.gz holds, and why: the
sample of still-Unknown advisories whose CVEs were looked up in NVD.

usage: nvd_sample.py SCAN.json [SEED]

SCAN.json is the scan with the OSV files and the CVE 5 cut imported (no
NVD yet). Its Unknown findings that name a CVE are grouped by advisory
(ecosystem, first id), each weighted by its findings (a DSA counts once per
binary package it hits). The sample, drawn with random.Random(SEED)
(default 20):
  - Debian: every advisory with 4 or more findings, and 8 of the others;
  - Go: 16 advisories; PyPI: 10 advisories.
For each sampled advisory its CVEs are listed in the order the finding
names them; they were read in that order until one carried a CVSS v3.x or
v4.0 vector (or all were read).

Prints one line per advisory: stratum, weight, sampled (yes/no), id, CVEs.
"""
import collections, json, random, sys


def main():
    scan = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    weight, cves = collections.Counter(), {}
    for f in json.load(open(scan))["vulnerabilities"]:
        if f["severity"].lower() != "unknown":
            continue
        named = [i for i in f["ids"] + f.get("related", []) if i.startswith("CVE-")]
        if not named:
            continue
        key = (f["ecosystem"].split(":")[0], f["ids"][0])
        weight[key] += 1
        cves[key] = named
    rng = random.Random(seed)
    chosen = set()
    for eco, heavy, n in (("Debian", 4, 8), ("Go", None, 16), ("PyPI", None, 10)):
        keys = sorted(k for k in weight if k[0] == eco)
        if heavy is not None:
            chosen.update(k for k in keys if weight[k] >= heavy)
            keys = [k for k in keys if weight[k] < heavy]
        chosen.update(rng.sample(keys, min(n, len(keys))))
    for key in sorted(weight, key=lambda k: (k[0], -weight[k], k[1])):
        eco = key[0]
        stratum = "Debian-heavy" if eco == "Debian" and weight[key] >= 4 else eco
        print(f"{stratum}\t{weight[key]}\t{'yes' if key in chosen else 'no'}\t{key[1]}\t{' '.join(cves[key])}")


main()
