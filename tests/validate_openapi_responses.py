"""Checks real responses against the OpenAPI document's response schemas
(JSON Schema 2020-12, which OpenAPI 3.1 schemas are), strictly: an object
may carry only the properties its schema names. Arguments: the document,
then a JSON file of [[operationId, status, body], ...]. Exit 1 names every
mismatch.
"""
import copy
import json
import sys

from jsonschema import Draft202012Validator

with open(sys.argv[1]) as f:
    doc = json.load(f)
with open(sys.argv[2]) as f:
    calls = json.load(f)

schemas = copy.deepcopy(doc["components"]["schemas"])
# Schemas that others extend through allOf keep their own extra
# properties open (the extension's are unevaluated for them); the rest
# are closed.
extended = set()
for s in schemas.values():
    for part in s.get("allOf", []):
        if "$ref" in part:
            extended.add(part["$ref"].rsplit("/", 1)[1])


def close(s):
    if isinstance(s, dict):
        if ("properties" in s or "allOf" in s) and "additionalProperties" not in s:
            s["unevaluatedProperties"] = False
        for k, v in s.items():
            if k != "allOf":
                close(v)
    elif isinstance(s, list):
        for v in s:
            close(v)


for name, s in schemas.items():
    if name not in extended:
        close(s)

ops = {}
for path, item in doc["paths"].items():
    for method, op in item.items():
        ops[op["operationId"]] = op

failures = []
for op_id, status, body in calls:
    response = ops[op_id]["responses"].get(str(status))
    if response is None:
        failures.append(f"{op_id}: status {status} is not documented")
        continue
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        continue
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "components": {"schemas": schemas}}
    root.update(schema)
    for e in Draft202012Validator(root).iter_errors(body):
        failures.append(f"{op_id} {status}: at {list(e.absolute_path)}: {e.message[:300]}")
if failures:
    print(*failures, sep="\n")
    sys.exit(1)
print(f"{len(calls)} responses match their schemas")
