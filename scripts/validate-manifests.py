#!/usr/bin/env python3
"""Validates Kubernetes manifests offline (scripts/check-deploy runs it on `kustomize build`'s output).

    validate-manifests.py --kubernetes-version 1.33.0 --crd KEDA_CRD.yaml ... < manifests.yaml

Built-in kinds are checked strictly (unknown fields refused) against the Kubernetes API schemas that
the `kubernetes-validate` package ships for each Kubernetes version, so no cluster and no network are
needed. Custom resources (KEDA's ScaledObject) are checked against the openAPIV3Schema of their
CustomResourceDefinition, given with --crd, with unknown fields refused wherever the CRD lists its
fields. Prints one line per object; exits 1 when any object is invalid or has no schema.
"""

import argparse
import sys

import jsonschema
import kubernetes_validate
import yaml


def strict(schema):
    """The CRD schema with additionalProperties: false wherever it lists properties and allows no
    others: the API server prunes unknown fields silently, so a typo would otherwise pass."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


def crd_schemas(paths):
    """(apiVersion, kind) -> JSON schema, from CustomResourceDefinition files."""
    schemas = {}
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    # apiVersion, kind and metadata are the API server's; the CRD leaves them open.
                    schema["properties"].update(
                        {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                         "metadata": {"type": "object"}}
                    )
                    schemas[key] = schema
    return schemas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("--crd", action="append", default=[], help="a CRD file (repeat)")
    args = parser.parse_args()
    crds = crd_schemas(args.crd)
    failures = 0
    for doc in yaml.safe_load_all(sys.stdin):
        if not doc:
            continue
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        key = (doc.get("apiVersion"), doc.get("kind"))
        try:
            if key in crds:
                jsonschema.validate(doc, crds[key])
                source = "its CRD"
            else:
                kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
                source = f"Kubernetes {args.kubernetes_version}"
            print(f"validate-manifests: ok       {name} ({source})", file=sys.stderr)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as e:
            path = "/".join(str(p) for p in getattr(e, "path", []))
            print(f"validate-manifests: INVALID  {name}: {path}: {e.message}", file=sys.stderr)
            failures += 1
        except kubernetes_validate.SchemaNotFoundError as e:
            print(f"validate-manifests: NO SCHEMA {name}: {e} (pass its CRD with --crd)", file=sys.stderr)
            failures += 1
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
