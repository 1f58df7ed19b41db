#!/usr/bin/env python3
"""Compares the packages Portcullis, syft and trivy found in one image.

usage: compare_sboms.py PORTCULLIS.json SYFT.json TRIVY.cdx.json

Prints, per ecosystem, how many (name, version) pairs each tool found and
how many agree with Portcullis, then every difference.
"""
import json, re, sys
from urllib.parse import unquote

def portcullis(path):
    out = {}
    for c in json.load(open(path))["components"]:
        eco = c["package"]["ecosystem"]
        out.setdefault({"deb": "deb", "apk": "apk", "python": "python", "npm": "npm"}.get(eco, eco), set()).add(
            (c["package"]["name"], c["package"]["version"]))
    return out

def syft(path):
    kinds = {"deb": "deb", "apk": "apk", "python": "python", "npm": "npm"}
    out = {}
    for a in json.load(open(path))["artifacts"]:
        eco = kinds.get(a["type"])
        if eco:
            out.setdefault(eco, set()).add((a["name"], a["version"]))
    return out

def trivy(path):
    out = {}
    for c in json.load(open(path)).get("components", []):
        purl = c.get("purl") or ""
        if not purl.startswith("pkg:"):
            continue
        kind = purl[4:].split("/", 1)[0]
        eco = {"deb": "deb", "apk": "apk", "pypi": "python", "npm": "npm"}.get(kind)
        if not eco:
            continue
        version = c.get("version", "")
        # trivy writes a dpkg epoch as a purl qualifier, not in the version.
        query = purl.split("?", 1)[1] if "?" in purl else ""
        quals = dict(q.split("=", 1) for q in query.split("&") if "=" in q)
        if "epoch" in quals and not version.startswith(quals["epoch"] + ":"):
            version = f"{quals['epoch']}:{version}"
        name = c["name"]
        if eco == "npm" and c.get("group"):
            name = f"{c['group']}/{name}"
        out.setdefault(eco, set()).add((unquote(name), version))
    return out

def normalized(found):
    """Python names compare as pip compares them (PEP 503): syft lowercases them."""
    out = dict(found)
    if "python" in out:
        out["python"] = {(re.sub(r"[-_.]+", "-", n).lower(), v) for n, v in out["python"]}
    return out

def main():
    p, s, t = (normalized(x) for x in (portcullis(sys.argv[1]), syft(sys.argv[2]), trivy(sys.argv[3])))
    print(f"{'ecosystem':<10} {'portcullis':>10} {'syft':>6} {'agree':>6} {'trivy':>6} {'agree':>6}")
    diffs = []
    for eco in sorted(set(p) | set(s) | set(t)):
        mine, sy, tr = p.get(eco, set()), s.get(eco, set()), t.get(eco, set())
        def pct(other):
            union = mine | other
            return f"{100 * len(mine & other) / len(union):.1f}%" if union else "-"
        print(f"{eco:<10} {len(mine):>10} {len(sy):>6} {pct(sy):>6} {len(tr):>6} {pct(tr):>6}")
        for name, other in (("syft", sy), ("trivy", tr)):
            for x in sorted(mine - other):
                diffs.append(f"  {eco}: {x[0]} {x[1]}: Portcullis only (not in {name})")
            for x in sorted(other - mine):
                diffs.append(f"  {eco}: {x[0]} {x[1]}: {name} only")
    if diffs:
        print("differences:")
        print("\n".join(diffs))

main()
