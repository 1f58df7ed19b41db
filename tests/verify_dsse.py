#!/usr/bin/env python3
"""Verifies a DSSE envelope holding an in-toto statement, independently of
Portcullis: DSSE's pre-authentication encoding rebuilt here, the ECDSA
P-256 / SHA-256 signature checked by Python's `cryptography`.

Usage: verify_dsse.py ENVELOPE.json PUBLIC_KEY.pem sha256:DIGEST PREDICATE_TYPE
Exit 0 when a signature verifies under the key and the statement names the
digest with that predicate type; 1 otherwise (the reason on stdout).
"""
import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def main() -> int:
    envelope_path, key_path, digest, predicate_type = sys.argv[1:5]
    envelope = json.load(open(envelope_path))
    key = serialization.load_pem_public_key(open(key_path, "rb").read())
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1", "not a P-256 key"
    if envelope.get("payloadType") != "application/vnd.in-toto+json":
        print(f"not verified: payload type {envelope.get('payloadType')!r}")
        return 1
    payload = base64.b64decode(envelope["payload"])
    signed = pae(envelope["payloadType"], payload)
    verified = False
    for s in envelope.get("signatures", []):
        try:
            key.verify(base64.b64decode(s["sig"]), signed, ec.ECDSA(hashes.SHA256()))
            verified = True
            break
        except InvalidSignature:
            pass
    if not verified:
        print("not verified: no signature verifies under the key")
        return 1
    statement = json.loads(payload)
    if statement.get("_type") not in ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"):
        print(f"not verified: _type {statement.get('_type')!r}")
        return 1
    alg, hexdigest = digest.split(":", 1)
    if not any(s.get("digest", {}).get(alg) == hexdigest for s in statement.get("subject", [])):
        print(f"not verified: the statement does not name {digest}")
        return 1
    if statement.get("predicateType") != predicate_type:
        print(f"not verified: predicate type {statement.get('predicateType')!r}")
        return 1
    print(f"verified {digest} ({predicate_type})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
