"""Parses Prometheus's text exposition format from stdin with the official client's parser
(which refuses malformed input) and prints one JSON object per sample."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        value = sample.value
        print(json.dumps({
            "family": family.name,
            "type": family.type,
            "name": sample.name,
            "labels": sample.labels,
            "value": None if math.isnan(value) else value,
        }))
