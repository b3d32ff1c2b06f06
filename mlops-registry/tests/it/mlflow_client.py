"""The Python side of the MLflow interop tests: what MlflowClient sees and does.

usage: mlflow_client.py TRACKING_URI describe NAME ALIAS
       mlflow_client.py TRACKING_URI move-alias NAME ALIAS VERSION
       mlflow_client.py TRACKING_URI reregister NAME VERSION
Prints one JSON object.
"""

import json
import sys

from mlflow import MlflowClient

uri, command, name, *rest = sys.argv[1:]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)

if command == "describe":
    (alias,) = rest
    version = client.get_model_version_by_alias(name, alias)
    run = client.get_run(version.run_id)
    print(json.dumps({
        "version": int(version.version),
        "aliases": sorted(version.aliases),
        "source": version.source,
        "run_id": version.run_id,
        "tags": version.tags,
        "description": version.description,
        "params": run.data.params,
        "metrics": run.data.metrics,
        "datasets": [
            {"name": d.dataset.name, "digest": d.dataset.digest} for d in run.inputs.dataset_inputs
        ],
    }))
elif command == "move-alias":
    alias, version = rest
    client.set_registered_model_alias(name, alias, version)
    print(json.dumps({"moved": alias, "to": int(version)}))
elif command == "reregister":
    (version,) = rest
    original = client.get_model_version(name, version)
    created = client.create_model_version(
        name, original.source, run_id=original.run_id, tags={"registered_by": "python"},
        description="re-registered from Python",
    )
    print(json.dumps({"version": int(created.version)}))
else:
    sys.exit(f"unknown command {command}")
