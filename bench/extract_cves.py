#!/usr/bin/env python3
"""Cuts the CVE records an image's findings name out of a CVE JSON 5
collection and an NVD per-CVE collection, for bench/unknown.sh.

usage: extract_cves.py --scan SCAN.json [--scan ...]
                       [--cve5 DIR_OR_GITDIR[@COMMIT]] ...
                       [--nvd DIR_OR_GITDIR[@COMMIT]] ...
                       [--out-cve5 FILE.jsonl.gz] [--out-nvd FILE.jsonl.gz]
                       [--wanted FILE]

The CVEs wanted are every `CVE-…` among the findings' `ids` and `related`
(aliases, a DSA's upstream CVEs, a PYSEC or GO record's aliases): exactly
the ids `portcullis scan` looks vectors up under.

Sources are a directory or a bare git repository (`fetch`'s mirrors;
`@COMMIT` picks the commit, default HEAD), laid out as
  CVE 5: cisagov/vulnrichment `YYYY/NNxxx/CVE-YYYY-NNNNN.json`,
         CVEProject/cvelistV5 `cves/YYYY/NNxxx/CVE-YYYY-NNNNN.json`;
  NVD:   fkie-cad/nvd-json-data-feeds `CVE-YYYY/CVE-YYYY-NNxx/CVE-YYYY-NNNN.json`
         (the NVD CVE API 2.0 `cve` object of each CVE).
The first source holding a CVE wins.

What is kept of each record (only what severity needs; the rest is cut):
  CVE 5: dataType, dataVersion, cveMetadata, and of the CNA container and
         each ADP container their providerMetadata, title and metrics;
  NVD:   id, sourceIdentifier, published, lastModified, vulnStatus, metrics.
Output: gzip JSON Lines sorted by CVE id, gzip mtime 0 (the same inputs give
the same bytes). --wanted writes the wanted ids, one a line, each with the
sources that had it.
"""
import argparse, gzip, io, json, os, re, subprocess, sys


def wanted_cves(scans):
    ids = set()
    for path in scans:
        with open(path) as f:
            for v in json.load(f)["vulnerabilities"]:
                for i in v["ids"] + v.get("related", []):
                    if re.fullmatch(r"CVE-\d{4}-\d{4,}", i):
                        ids.add(i)
    return sorted(ids, key=cve_key)


def cve_key(cve):
    _, year, num = cve.split("-")
    return (int(year), int(num))


def cve5_paths(cve):
    _, year, num = cve.split("-")
    rel = f"{year}/{num[:-3] or '0'}xxx/{cve}.json"
    return [rel, "cves/" + rel]


def nvd_paths(cve):
    _, year, num = cve.split("-")
    return [f"CVE-{year}/CVE-{year}-{num[:-2]}xx/{cve}.json"]


class Source:
    """A directory or a bare git repository at a commit."""

    def __init__(self, spec):
        path, _, commit = spec.partition("@")
        self.path = path
        self.git = os.path.exists(os.path.join(path, "HEAD")) and os.path.isdir(os.path.join(path, "objects"))
        self.commit = None
        if self.git:
            self.commit = subprocess.run(["git", "--git-dir", path, "rev-parse", (commit or "HEAD") + "^{commit}"],
                                         check=True, capture_output=True, text=True).stdout.strip()
            self.batch = subprocess.Popen(["git", "--git-dir", path, "cat-file", "--batch"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def name(self):
        return f"{self.path}@{self.commit}" if self.git else self.path

    def read(self, rel):
        if not self.git:
            full = os.path.join(self.path, rel)
            return open(full, "rb").read() if os.path.isfile(full) else None
        self.batch.stdin.write(f"{self.commit}:{rel}\n".encode())
        self.batch.stdin.flush()
        header = self.batch.stdout.readline().split()
        if len(header) < 3 or header[1] == b"missing":
            return None
        size = int(header[2])
        data = self.batch.stdout.read(size)
        self.batch.stdout.read(1)  # the newline after the object
        return data


def cut_cve5(record):
    out = {k: record[k] for k in ("dataType", "dataVersion", "cveMetadata") if k in record}
    containers = record.get("containers", {})
    keep = lambda c: {k: c[k] for k in ("providerMetadata", "title", "metrics") if k in c}
    out["containers"] = {"cna": keep(containers.get("cna", {}))}
    if containers.get("adp"):
        out["containers"]["adp"] = [keep(a) for a in containers["adp"]]
    return out


def cut_nvd(record):
    return {k: record[k] for k in ("id", "sourceIdentifier", "published", "lastModified", "vulnStatus", "metrics")
            if k in record}


def extract(cves, sources, paths, cut, check_id):
    found, where = [], {}
    for cve in cves:
        for src in sources:
            data = next((d for d in (src.read(p) for p in paths(cve)) if d is not None), None)
            if data is None:
                continue
            record = json.loads(data)
            if check_id(record) != cve:
                sys.exit(f"{src.name()}: the file for {cve} holds {check_id(record)}")
            found.append(cut(record))
            where[cve] = src.name()
            break
    return found, where


def write(path, records):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        for r in records:
            gz.write(json.dumps(r, separators=(",", ":"), ensure_ascii=False, sort_keys=False).encode() + b"\n")
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scan", action="append", required=True)
    ap.add_argument("--cve5", action="append", default=[])
    ap.add_argument("--nvd", action="append", default=[])
    ap.add_argument("--out-cve5")
    ap.add_argument("--out-nvd")
    ap.add_argument("--wanted")
    a = ap.parse_args()
    cves = wanted_cves(a.scan)
    cve5, cve5_where = extract(cves, [Source(s) for s in a.cve5], cve5_paths, cut_cve5,
                               lambda r: r.get("cveMetadata", {}).get("cveId"))
    nvd, nvd_where = extract(cves, [Source(s) for s in a.nvd], nvd_paths, cut_nvd, lambda r: r.get("id"))
    if a.out_cve5:
        write(a.out_cve5, cve5)
    if a.out_nvd:
        write(a.out_nvd, nvd)
    if a.wanted:
        with open(a.wanted, "w") as f:
            for c in cves:
                f.write(f"{c}\t{'cve5' if c in cve5_where else '-'}\t{'nvd' if c in nvd_where else '-'}\n")
    print(f"{len(cves)} CVEs named by the findings; CVE 5 records found: {len(cve5)}; NVD records found: {len(nvd)}",
          file=sys.stderr)


main()
