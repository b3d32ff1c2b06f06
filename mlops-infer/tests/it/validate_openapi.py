"""Validates an OpenAPI document with openapi-spec-validator, then JSON instances against
schemas of its components with jsonschema: `validate_openapi.py DOC [SCHEMA INSTANCE]...`,
each file a JSON document. Prints `valid` or fails with the validator's message."""

import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

with open(sys.argv[1]) as f:
    document = json.load(f)
validate(document)
pairs = sys.argv[2:]
for name, path in zip(pairs[::2], pairs[1::2]):
    with open(path) as f:
        instance = json.load(f)
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    Draft202012Validator(schema).validate(instance)
print("valid")
