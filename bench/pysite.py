#!/usr/bin/env python3
"""Installs pinned PyPI packages into a site-packages tree for another Python
without running it, as pip would have laid them out.

usage: pysite.py REQUIREMENTS DOWNLOADS SITE_PACKAGES [PYTHON_VERSION]

Each `name==version` line is downloaded once into DOWNLOADS with pip: a
wheel for CPython PYTHON_VERSION (default 3.8) on manylinux x86_64 when the
release has one, else the release's sdist. A wheel is unpacked whole, its
`.dist-info` included (RECORD, INSTALLER as pip writes them). An sdist is
not built: its `PKG-INFO` becomes `<name>-<version>-py<X.Y>.egg-info/PKG-INFO`,
which is what `setup.py install` leaves, so the package is there for a
scanner even when its C extension would not build here.
"""
import glob, os, re, subprocess, sys, tarfile, zipfile

PLATFORMS = ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def pins(path):
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            yield name.strip(), version.strip()


def canon(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def found(downloads, name, version):
    """The downloaded file of (name, version), if any."""
    want = canon(name)
    for path in sorted(glob.glob(os.path.join(downloads, "*"))):
        base = os.path.basename(path)
        stem = re.sub(r"(\.tar\.gz|\.zip|\.tar\.bz2|\.whl)$", "", base)
        parts = stem.split("-")
        # wheels: name-version-...; sdists: name-version
        for i in range(1, len(parts)):
            if canon("-".join(parts[:i])) == want and parts[i] == version:
                return path
    return None


def download(downloads, name, version, pyver):
    spec = f"{name}=={version}"
    wheel = ["pip", "download", "-q", "--no-deps", "-d", downloads, "--only-binary=:all:",
             "--python-version", pyver, "--implementation", "cp",
             "--abi", "cp" + pyver.replace(".", "")] + [a for p in PLATFORMS for a in ("--platform", p)]
    if subprocess.run([sys.executable, "-m"] + wheel + [spec], capture_output=True).returncode == 0:
        return
    # No wheel for that Python: the sdist, without preparing its metadata.
    sdist = ["pip", "download", "-q", "--no-deps", "-d", downloads, "--no-binary=:all:"]
    r = subprocess.run([sys.executable, "-m"] + sdist + [spec], capture_output=True, text=True)
    if found(downloads, name, version) is None:
        sys.exit(f"{spec}: no wheel and no sdist could be downloaded\n{r.stderr}")


def install_wheel(path, site):
    with zipfile.ZipFile(path) as z:
        z.extractall(site)
        infos = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
    for meta in infos:
        with open(os.path.join(site, os.path.dirname(meta), "INSTALLER"), "w") as f:
            f.write("pip\n")


def install_sdist(path, site, name, version, pyver):
    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            member = min((n for n in z.namelist() if n.endswith("/PKG-INFO")), key=len)
            text = z.read(member)
    else:
        with tarfile.open(path) as t:
            member = min((m for m in t.getmembers() if m.name.endswith("/PKG-INFO")), key=lambda m: len(m.name))
            text = t.extractfile(member).read()
    egg = os.path.join(site, f"{canon(name)}-{version}-py{pyver}.egg-info")
    os.makedirs(egg, exist_ok=True)
    with open(os.path.join(egg, "PKG-INFO"), "wb") as f:
        f.write(text)


def main():
    req, downloads, site = sys.argv[1:4]
    pyver = sys.argv[4] if len(sys.argv) > 4 else "3.8"
    os.makedirs(downloads, exist_ok=True)
    os.makedirs(site, exist_ok=True)
    kinds = {"wheel": 0, "sdist": 0}
    for name, version in pins(req):
        path = found(downloads, name, version)
        if path is None:
            download(downloads, name, version, pyver)
            path = found(downloads, name, version)
        if path.endswith(".whl"):
            install_wheel(path, site)
            kinds["wheel"] += 1
        else:
            install_sdist(path, site, name, version, pyver)
            kinds["sdist"] += 1
            print(f"  {name}=={version}: sdist only for Python {pyver}; PKG-INFO as egg-info", file=sys.stderr)
    print(f"{kinds['wheel']} wheels unpacked, {kinds['sdist']} sdists as egg-info into {site}", file=sys.stderr)


main()
