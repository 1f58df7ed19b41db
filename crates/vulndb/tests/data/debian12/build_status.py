#!/usr/bin/env python3
"""Build dpkg status fixtures for the Debian 12 scanner test.

  build_status.py from-repoinfo TRANSCRIPTION OUT
      dpkg status from a transcribed repo-info package list (see PROVENANCE.md).
      Versions/sources come only from the transcription.  Architecture: "amd64"
      for names repo-info printed as NAME:amd64 (Multi-Arch: same); for the
      others it is looked up with `apt-cache show NAME` (all vs amd64; this
      does not change between bookworm point releases).
  build_status.py subset STATUS NAMES OUT
      the paragraphs of STATUS whose Package is listed in NAMES.
  build_status.py updated STATUS OUT
      same binary package names as STATUS, each at this machine's apt
      *candidate* version (bookworm + bookworm-updates + bookworm-security on
      deb.debian.org), Source/Architecture/Multi-Arch from
      `apt-cache show NAME=VERSION`.  Read-only apt-cache queries only.
"""
import subprocess, sys

def apt(*args):
    return subprocess.run(["apt-cache", *args], capture_output=True, text=True,
                          check=True).stdout

def fields(rec):
    f = {}
    for line in rec.splitlines():
        if line[:1] not in (" ", "\t", "") and ":" in line:
            k, v = line.split(":", 1)
            f[k] = v.strip()
    return f

def paragraph(name, arch, ma_same, ver, src, srcver):
    out = [f"Package: {name}", "Status: install ok installed"]
    if ma_same:
        out.append("Multi-Arch: same")
    out.append(f"Architecture: {arch}")
    if srcver != ver:
        out.append(f"Source: {src} ({srcver})")
    elif src != name:
        out.append(f"Source: {src}")
    out.append(f"Version: {ver}")
    return "\n".join(out) + "\n"

def read_transcription(path):
    pkgs, src, srcver = [], None, None
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("S "):
            _, src, srcver = line.split()
        else:
            name, ver = line.split()
            pkgs.append((name.split(":")[0], name.endswith(":amd64"), ver, src, srcver))
    return sorted(pkgs)

def read_status(path):
    return [p for p in open(path).read().split("\n\n") if p.strip()]

def candidate(name):
    for line in apt("policy", name).splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            return line.split(None, 1)[1]
    raise SystemExit(f"no candidate for {name}")

def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "from-repoinfo":
        src_path, out = args
        paras = []
        for name, ma_same, ver, src, srcver in read_transcription(src_path):
            arch = "amd64" if ma_same else \
                fields(apt("show", "--no-all-versions", name))["Architecture"]
            paras.append(paragraph(name, arch, ma_same, ver, src, srcver))
    elif mode == "subset":
        status, names_path, out = args
        names = {w for l in open(names_path) if not l.startswith("#") for w in l.split()}
        full = {fields(p)["Package"]: p.rstrip("\n") + "\n" for p in read_status(status)}
        missing = names - set(full)
        if missing:
            raise SystemExit(f"not in {status}: {sorted(missing)}")
        paras = [full[n] for n in sorted(names)]
    elif mode == "updated":
        status, out = args
        paras = []
        for name in sorted(fields(p)["Package"] for p in read_status(status)):
            ver = candidate(name)
            f = fields(apt("show", f"{name}={ver}").split("\n\n")[0])
            s = f.get("Source", name)
            src, srcver = (s.split(" (")[0], s.split(" (")[1].rstrip(")")) if " (" in s else (s, ver)
            paras.append(paragraph(name, f["Architecture"], f.get("Multi-Arch") == "same",
                                   ver, src, srcver))
    else:
        raise SystemExit(__doc__)
    open(out, "w").write("\n".join(paras))
    print(f"wrote {out}: {len(paras)} packages")

if __name__ == "__main__":
    main()
