#!/usr/bin/env bash
# The cost of signature checks under attack (issue 19, item 4): 2,000
# registered keys (125 accounts of 16), and an image whose `.sig` lists 256
# bogus candidates, each a payload naming the image with a random ECDSA
# signature. Printed side by side:
#   - the tag listing of the repository (it says who signed each image):
#     its first answer and the median of the next ones;
#   - a reader's manifest GET (signed-only pull rule): the bogus image, an
#     image signed by the trusted key, and the same image in a repository
#     without a rule (the baseline), medians over N requests;
#   - /healthz while listings run, to show the async workers stay free.
# Goals: a listing <= 50 ms; a reader's GET <= 2 ms above the baseline.
#
#   bench/signatures.sh            # N=300 requests per row
#   N=50 bench/signatures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W=${BENCH_WORK:-bench/work}/signatures
A=${BENCH_ADDR:-127.0.0.1:5098}
PW=bench-admin-password
N=${N:-300}
W=$(realpath -m "$W")
# shellcheck source=bench/serve.sh
. bench/serve.sh

python3 - "$A" "$PW" "$N" <<'PY'
import base64, hashlib, json, os, secrets, statistics, sys, threading, time
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

addr, admin_pw, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = f"http://{addr}"
# An unlimited API token (organizations need one; a password costs an argon2 hash a request).
r = requests.post(f"{base}/api/v1/accounts/admin/tokens", auth=("admin", admin_pw), json={"name": "bench-api", "scopes": ["*:*"]})
if r.status_code != 201:
    sys.exit(f"token: {r.status_code} {r.text}")
admin = requests.Session()
admin.headers["Authorization"] = "Bearer " + r.json()["token"]
MT = "application/vnd.oci.image.manifest.v1+json"
SIG = "application/vnd.dev.cosign.simplesigning.v1+json"
USER_PW = "bench-user-password"

def ok(r, *codes):
    if r.status_code not in (codes or (200, 201, 204)):
        sys.exit(f"{r.request.method} {r.url}: {r.status_code} {r.text[:300]}")
    return r

def api(method, path, body=None):
    return ok(admin.request(method, base + path, json=body))

def blob(repo, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    ok(admin.post(f"{base}/v2/{repo}/blobs/uploads/?digest={d}", data=data), 201)
    return {"digest": d, "size": len(data)}

def manifest(repo, ref, body):
    raw = json.dumps(body).encode()
    ok(admin.put(f"{base}/v2/{repo}/manifests/{ref}", data=raw, headers={"Content-Type": MT}), 201)
    return "sha256:" + hashlib.sha256(raw).hexdigest()

def pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()

def image(repo, tag, seed):
    config = blob(repo, json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode())
    layer = blob(repo, f"layer {seed}".encode())
    return manifest(repo, tag, {"schemaVersion": 2, "mediaType": MT,
                                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]})

def payload(digest, i):
    return json.dumps({"critical": {"identity": {"docker-reference": f"{addr}/acme/app"},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"},
                       "optional": {"n": i}}).encode()

def sign_manifest(repo, digest, sigs):
    config = blob(repo, b"{}")
    layers = []
    for data, sig in sigs:
        p = blob(repo, data)
        layers.append({"mediaType": SIG, **p,
                       "annotations": {"dev.cosignproject.cosign/signature": base64.b64encode(sig).decode()}})
    manifest(repo, "sha256-" + digest.split(":")[1] + ".sig",
             {"schemaVersion": 2, "mediaType": MT,
              "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config}, "layers": layers})

t0 = time.time()
for org in ("ci", "acme"):
    api("POST", "/api/v1/orgs", {"name": org})
api("POST", "/api/v1/orgs/ci/teams", {"name": "signers"})
for u in ["builder", "dev"] + [f"k{i}" for i in range(125)]:
    api("POST", "/api/v1/users", {"name": u, "password": USER_PW})
api("PUT", "/api/v1/orgs/ci/teams/signers/members/builder")
api("POST", "/api/v1/namespaces/acme/grants", {"account": "dev", "role": "read"})
for i in range(125):
    for j in range(16):
        api("POST", f"/api/v1/accounts/k{i}/keys", {"name": f"key{j}", "pem": pem(ec.generate_private_key(ec.SECP256R1()))})
trusted = ec.generate_private_key(ec.SECP256R1())
api("POST", "/api/v1/accounts/builder/keys", {"name": "ci", "pem": pem(trusted)})

bogus = image("acme/app", "bogus", 1)
sigs = []
for i in range(256):
    r, s = secrets.randbelow(2**255) + 1, secrets.randbelow(2**255) + 1
    sigs.append((payload(bogus, i), encode_dss_signature(r, s)))
sign_manifest("acme/app", bogus, sigs)
good = image("acme/app", "good", 2)
p = payload(good, 0)
sign_manifest("acme/app", good, [(p, trusted.sign(p, ec.ECDSA(hashes.SHA256())))])
plain = image("acme/plain", "good", 2)
api("PUT", "/api/v1/repositories/acme/app", {"pull_rule": {"require_signed_by": {"teams": ["ci/signers"]}}})
print(f"set-up: 2,001 keys, 256 bogus candidates ({time.time() - t0:.0f} s)")

def reader(repo):
    r = ok(requests.get(f"{base}/auth/token", params={"service": "portcullis", "scope": f"repository:{repo}:pull"},
                        auth=("dev", USER_PW)))
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + r.json()["token"]
    s.headers["Accept"] = MT
    return s

def timed(session, url, count, want):
    out = []
    for _ in range(count):
        t = time.perf_counter()
        r = session.get(url)
        out.append((time.perf_counter() - t) * 1000)
        if r.status_code != want:
            sys.exit(f"GET {url}: {r.status_code}, want {want}: {r.text[:200]}")
    return out

listing = f"{base}/api/v1/repositories/acme/app/tags"
first = timed(admin, listing, 1, 200)[0]
# /healthz while listings run on two threads.
health, stop = [], threading.Event()
def lister():
    s = requests.Session(); s.headers.update(admin.headers)
    while not stop.is_set():
        s.get(listing)
threads = [threading.Thread(target=lister) for _ in range(2)]
for t in threads: t.start()
health = timed(requests.Session(), f"{base}/healthz", 100, 200)
stop.set()
for t in threads: t.join()
later = timed(admin, listing, max(n // 10, 10), 200)
app, plain_reader = reader("acme/app"), reader("acme/plain")
rows = [
    ("tag listing, first", [first], 50),
    ("tag listing, later (median)", later, 50),
    ("/healthz during listings (median)", health, None),
]
base_get = timed(plain_reader, f"{base}/v2/acme/plain/manifests/good", n, 200)
good_get = timed(app, f"{base}/v2/acme/app/manifests/good", n, 200)
bogus_get = timed(app, f"{base}/v2/acme/app/manifests/bogus", n, 403)
med = statistics.median
print()
print(f"| {'request':<40} | {'median ms':>9} | {'p99 ms':>7} | goal |")
print(f"|{'-'*42}|{'-'*11}|{'-'*9}|------|")
def row(name, xs, goal):
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
    print(f"| {name:<40} | {med(xs):9.2f} | {p99:7.2f} | {goal} |")
for name, xs, limit in rows:
    row(name, xs, "" if limit is None else ("met" if med(xs) <= limit else f"MISSED (<= {limit} ms)"))
row("GET, no rule (baseline)", base_get, "")
for name, xs in (("GET, signed by the trusted key", good_get), ("GET, 256 bogus candidates (403)", bogus_get)):
    over = med(xs) - med(base_get)
    row(name, xs, "met" if over <= 2 else f"MISSED (+{over:.2f} ms > 2)")
PY
