"""An independent reader of the Delta tables the tests write: the Python `deltalake` package.

usage: read_delta.py TABLE_URI [STORAGE_OPTIONS_JSON]
Prints the table as JSON: version, column names and types, and the rows (sorted by
row_id where there is one).
"""

import json
import os
import sys

from deltalake import DeltaTable

uri = sys.argv[1]
options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
table = DeltaTable(uri, storage_options=options)
data = table.to_pyarrow_table()
# Inference tables by row id; other tables (a capture's requests table) as written.
rows = sorted(data.to_pylist(), key=lambda row: str(row.get("row_id", "")))
print(json.dumps({
    "version": table.version(),
    "columns": [field.name for field in data.schema],
    "types": {field.name: str(field.type) for field in data.schema},
    "rows": rows,
}, default=str))
sys.stdout.flush()
# Leave without interpreter teardown: the deltalake runtime's threads can abort the process
# ("terminate called without an active exception") while Python shuts down.
os._exit(0)
