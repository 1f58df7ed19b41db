"""Checks an OpenAPI 3.1 document with openapi-spec-validator (the OpenAPI
3.1 schema, its JSON Schema dialect for every schema, path parameters that
each path names and declares, references that resolve); exit 1 names what
is wrong.
"""
import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator

with open(sys.argv[1]) as f:
    doc = json.load(f)
if doc.get("openapi", "").split(".")[:2] != ["3", "1"]:
    print(f"not an OpenAPI 3.1 document: openapi = {doc.get('openapi')!r}")
    sys.exit(1)
errors = list(OpenAPIV31SpecValidator(doc).iter_errors())
if errors:
    print("openapi-spec-validator:", *[str(e).splitlines()[0] for e in errors[:20]], sep="\n")
    sys.exit(1)
