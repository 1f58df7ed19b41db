"""Checks an SBOM with the SBOM projects' own tooling; exit 1 names what is wrong.

spdx:      the SPDX 2.3 JSON schema (as lib4sbom ships it), then the SPDX
           project's validator (spdx-tools), which also checks what a schema
           cannot (SPDXID references, relationships, license expressions).
cyclonedx: the CycloneDX 1.5 JSON schema, strict, through the CycloneDX
           project's own library (cyclonedx-python-lib).
"""
import json
import os
import sys

kind, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    text = f.read()
doc = json.loads(text)

if kind == "spdx":
    import jsonschema
    import lib4sbom

    schema_path = os.path.join(os.path.dirname(lib4sbom.__file__), "schemas", "spdx", "2.3-schema.json")
    with open(schema_path) as f:
        schema = json.load(f)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
    if errors:
        print("SPDX schema:", *[f"{list(e.path)}: {e.message}" for e in errors[:20]], sep="\n")
        sys.exit(1)
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    messages = validate_full_spdx_document(parse_file(path))
    if messages:
        print("spdx-tools:", *[m.validation_message for m in messages[:20]], sep="\n")
        sys.exit(1)
elif kind == "cyclonedx":
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    if error:
        print("CycloneDX 1.5 schema:", error)
        sys.exit(1)
else:
    sys.exit(f"unknown kind {kind}")
print("valid")
