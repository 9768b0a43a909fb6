#!/usr/bin/python3
"""Read an OpenMetrics page with the reference parser (prometheus_client's, strict: it
rejects a page without "# EOF", a counter family named with _total, a sample that does not
belong to its family, a bad exemplar).

    om.py PAGE    prints one JSON object: {"families": {name: type}, "units": {name: unit},
                  "created": N (the _created samples), "exemplars": [{"sample", "labels",
                  "trace_id", "span_id", "value", "timestamp"}]}; exits 1 if it does not
                  parse
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
out = {"families": {}, "units": {}, "created": 0, "exemplars": []}
try:
    for fam in text_string_to_metric_families(text):
        out["families"][fam.name] = fam.type
        if fam.unit:
            out["units"][fam.name] = fam.unit
        for s in fam.samples:
            if s.name.endswith("_created"):
                out["created"] += 1
            if s.exemplar is not None:
                out["exemplars"].append({
                    "sample": s.name, "labels": s.labels,
                    "trace_id": s.exemplar.labels.get("trace_id"),
                    "span_id": s.exemplar.labels.get("span_id"),
                    "value": s.exemplar.value,
                    "timestamp": None if s.exemplar.timestamp is None else float(s.exemplar.timestamp)})
except Exception as e:  # the parser raises ValueError (and others) with the line
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
    sys.exit(1)
print(json.dumps(out))
