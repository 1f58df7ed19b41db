"""Checks webhook deliveries as a receiver would: the HMAC over
"<timestamp>.<delivery>.<event>.<body>" with the hook's secret, a wrong
secret failing, and every payload against the versioned JSON Schema.
Usage: webhook_verify.py SCHEMA DELIVERIES.json SECRET"""
import hashlib
import hmac
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
deliveries = json.load(open(sys.argv[2]))
secret = sys.argv[3].encode()


def signature(key, d):
    signed = f"{d['timestamp']}.{d['delivery']}.{d['event']}.".encode() + d["body"].encode()
    return "sha256=" + hmac.new(key, signed, hashlib.sha256).hexdigest()


validator = jsonschema.Draft202012Validator(schema)
for d in deliveries:
    assert hmac.compare_digest(signature(secret, d), d["signature"]), f"bad signature on {d['event']}"
    assert not hmac.compare_digest(signature(b"not-the-secret-at-all", d), d["signature"]), "a wrong secret verified"
    payload = json.loads(d["body"])
    assert payload["type"] == d["event"], (payload["type"], d["event"])
    validator.validate(payload)
print(f"{len(deliveries)} deliveries verified")
