#!/usr/bin/env python3
"""Side by side: how many findings of `portcullis scan --format json` runs
are Unknown, and who rated the others.

usage: unknown_table.py [--cves FILE.jsonl.gz ...] LABEL=SCAN.json ...

Rows: findings, Unknown (count and share), each severity, each
`severity_source`, and each ecosystem's findings and Unknown ones. With
--cves (the NVD / CVE 5 files imported for the last run), the last run's
Unknown findings are also sorted into why each one has no rating:
  - no CVE: none of its ids, aliases or related ids is a CVE;
  - CVE not in the data: it names CVEs, none of which is in those files;
  - CVE without CVSS v3/v4: the CVEs are there, with no v3.x/v4.0 vector
    (CVSS v2 only, or no metrics at all).
"""
import collections, gzip, json, sys

ORIGINS = ["debian", "advisory", "ghsa", "nvd", "cve:cna", "cve:adp", "nvd:cna", "osv"]


def load(path):
    with open(path) as f:
        found = json.load(f)["vulnerabilities"]
    for f in found:
        f["severity"] = f["severity"].lower()
    return found


def cve_vectors(paths):
    """CVE id -> set of CVSS kinds (v2, v3, v4) its records carry."""
    kinds = collections.defaultdict(set)
    for path in paths:
        with gzip.open(path, "rt") as f:
            for line in f:
                r = json.loads(line)
                if "cveMetadata" in r:
                    cid = r["cveMetadata"]["cveId"]
                    kinds[cid]
                    cont = r.get("containers", {})
                    for c in [cont.get("cna", {})] + cont.get("adp", []):
                        for m in c.get("metrics", []):
                            for k, v in (("cvssV2_0", "v2"), ("cvssV3_0", "v3"), ("cvssV3_1", "v3"), ("cvssV4_0", "v4")):
                                if k in m:
                                    kinds[cid].add(v)
                else:
                    cid = r["id"]
                    kinds[cid]
                    for k, v in (("cvssMetricV2", "v2"), ("cvssMetricV30", "v3"), ("cvssMetricV31", "v3"), ("cvssMetricV40", "v4")):
                        if r.get("metrics", {}).get(k):
                            kinds[cid].add(v)
    return kinds


def prefix(i):
    return i.split("-")[0] if not i.startswith("DEBIAN-CVE") else "DEBIAN-CVE"


def why(f, kinds):
    cves = [i for i in f["ids"] + f.get("related", []) if i.startswith("CVE-")]
    if not cves:
        return "no CVE"
    if not any(c in kinds for c in cves):
        return "CVE not in the data"
    if not any(kinds.get(c, set()) & {"v3", "v4"} for c in cves):
        return "CVE without CVSS v3/v4"
    return "CVE with v3/v4 (unexpected)"


def main():
    args, cve_files = sys.argv[1:], []
    while args and args[0] == "--cves":
        cve_files.append(args[1])
        args = args[2:]
    runs = [(a.split("=", 1)[0], load(a.split("=", 1)[1])) for a in args]
    rows = []

    def row(name, values):
        rows.append((name, [str(v) for v in values]))

    row("findings", [len(fs) for _, fs in runs])
    unknown = [sum(f["severity"] == "unknown" for f in fs) for _, fs in runs]
    row("Unknown", unknown)
    row("Unknown %", [f"{100 * u / max(1, len(fs)):.1f}%" for u, (_, fs) in zip(unknown, runs)])
    for sev in ["critical", "high", "medium", "low"]:
        row(f"  {sev}", [sum(f["severity"] == sev for f in fs) for _, fs in runs])
    sources = collections.OrderedDict((o, None) for o in ORIGINS)
    for _, fs in runs:
        for f in fs:
            sources.setdefault(f.get("severity_source") or "(none: Unknown)", None)
    sources.setdefault("(none: Unknown)", None)
    rows.append(("severity_source", None))
    for s in sources:
        row(f"  {s}", [sum((f.get("severity_source") or "(none: Unknown)") == s for f in fs) for _, fs in runs])
    ecosystems = sorted({f["ecosystem"] for _, fs in runs for f in fs})
    rows.append(("ecosystem: findings / Unknown (%)", None))
    for e in ecosystems:
        cells = []
        for _, fs in runs:
            mine = [f for f in fs if f["ecosystem"] == e]
            u = sum(f["severity"] == "unknown" for f in mine)
            cells.append(f"{len(mine)} / {u} ({100 * u / max(1, len(mine)):.1f}%)")
        row(f"  {e}", cells)

    width = max(len(r[0]) for r in rows) + 2
    cols = [max(len(label), 22) for label, _ in runs]
    print(f"{'':<{width}}" + "".join(f"{label:>{c + 2}}" for (label, _), c in zip(runs, cols)))
    for name, values in rows:
        if values is None:
            print(name)
        else:
            print(f"{name:<{width}}" + "".join(f"{v:>{c + 2}}" for v, c in zip(values, cols)))

    if cve_files:
        kinds = cve_vectors(cve_files)
        label, fs = runs[-1]
        classes = collections.Counter()
        examples = collections.defaultdict(list)
        for f in fs:
            if f["severity"] != "unknown":
                continue
            key = (f["ecosystem"].split(":")[0], prefix(f["ids"][0]), why(f, kinds))
            classes[key] += 1
            if len(examples[key]) < 3:
                examples[key].append(f"{f['ids'][0]} {f['package']}")
        print(f"\nUnknown findings of '{label}', by class (ecosystem, id prefix, why):")
        for key, n in classes.most_common():
            print(f"  {n:4}  {key[0]:<8} {key[1]:<11} {key[2]:<24} e.g. {', '.join(examples[key])}")


main()
