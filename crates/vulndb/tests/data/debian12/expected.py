#!/usr/bin/env python3
"""Expected DSA/DLA findings for a dpkg status file, using the real dpkg.

usage: python3 expected.py STATUS_FILE OUT_FILE [VULNDB]

For every installed binary package the *source* name and *source* version are
used: `Source: name (version)` when present, else `Source: name` + the binary
Version, else the binary name + Version.  Every affected[] entry of the
debian-dsa-dla OSV file with ecosystem "Debian:12" and that source name is
checked against each ECOSYSTEM range (introduced/fixed events, in order) with
`dpkg --compare-versions`.  A source package is reported once per advisory,
however many of its binaries are installed.

Output lines: "<ID> <source> <installed source version> <fixed version>",
sorted by ID then source.
"""
import gzip, json, subprocess, sys

VULNDB = "/work/shared/vulndb/debian-dsa-dla.osv.jsonl.gz"

def dpkg_cmp(a, op, b):
    return subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0

def sources(status_path):
    srcs = {}
    for para in open(status_path).read().split("\n\n"):
        f = {}
        for line in para.splitlines():
            if ":" in line and not line.startswith(" "):
                k, v = line.split(":", 1)
                f[k] = v.strip()
        if "Package" not in f or "installed" not in f.get("Status", ""):
            continue
        name, ver = f["Package"], f["Version"]
        s = f.get("Source", name)
        if " (" in s:
            s, sver = s.split(" (")
            sver = sver.rstrip(")")
        else:
            sver = ver
        old = srcs.get(s)
        if old and old != sver:
            print(f"warning: {s} installed at two source versions {old} / {sver}", file=sys.stderr)
        srcs[s] = sver
    return srcs

def affected(ver, events):
    """OSV ECOSYSTEM semantics for an ordered introduced/fixed event list."""
    hit = False
    for e in events:
        if "introduced" in e:
            iv = e["introduced"]
            if iv == "0" or dpkg_cmp(ver, "ge", iv):
                hit = True
        elif "fixed" in e:
            if hit and dpkg_cmp(ver, "ge", e["fixed"]):
                hit = False
        elif "last_affected" in e:
            if hit and dpkg_cmp(ver, "gt", e["last_affected"]):
                hit = False
    return hit

def main():
    status, out = sys.argv[1], sys.argv[2]
    vulndb = sys.argv[3] if len(sys.argv) > 3 else VULNDB
    srcs = sources(status)
    rows = set()
    for line in gzip.open(vulndb, "rt"):
        r = json.loads(line)
        if r.get("withdrawn"):
            continue
        for a in r.get("affected", []):
            p = a["package"]
            if p["ecosystem"] != "Debian:12" or p["name"] not in srcs:
                continue
            sver = srcs[p["name"]]
            for rg in a.get("ranges", []):
                if rg["type"] != "ECOSYSTEM":
                    continue
                if affected(sver, rg["events"]):
                    fixed = next((e["fixed"] for e in rg["events"] if "fixed" in e), "-")
                    rows.add((r["id"], p["name"], sver, fixed))
    def key(row):
        kind, num, rev = row[0].split("-")
        return (kind, int(num), int(rev), row[1])
    with open(out, "w") as fh:
        for row in sorted(rows, key=key):
            fh.write(" ".join(row) + "\n")
    print(f"{out}: {len(rows)} findings, {len({r[0] for r in rows})} advisories, "
          f"{len({r[1] for r in rows})} of {len(srcs)} source packages affected")

if __name__ == "__main__":
    main()
