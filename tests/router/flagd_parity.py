#!/usr/bin/env python3
"""weft's flag engine against the official Python flagd evaluator, on the same flag file.

    flagd_parity.py FLAGS_EVAL

Evaluates every flag below for 6000 generated contexts with the C++ engine (the flags_eval driver)
and with flagd-core, the evaluator of the official flagd provider's in-process and file resolvers
(openfeature-flagd-core, pinned in scripts/requirements-peers.txt), and fails on the first context for which the variant, the reason or the error code differ. Also
checks the distribution of the fractional flags against their weights, so that two engines that
agreed on a broken hash would still fail.
"""
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError

KEYS = 6000

FLAGS = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "metadata": {"owner": "weft-tests"},
    "$evaluators": {
        "big_tenants": {"in": [{"var": "tenant"}, ["acme", "globex", "initech"]]},
        "eu": {"starts_with": [{"var": "region"}, "eu-"]},
    },
    "flags": {
        "two": {"state": "ENABLED", "variants": {"celery": "celery", "temporal": "temporal"},
                "defaultVariant": "celery",
                "targeting": {"fractional": [["celery", 90], ["temporal", 10]]}},
        "three": {"state": "ENABLED", "variants": {"a": 1, "b": 2, "c": 3, "d": 4}, "defaultVariant": "a",
                  "targeting": {"fractional": [["a", 5], ["b", 3], ["c", 1], ["d"]]}},
        "custom": {"state": "ENABLED", "variants": {"celery": 0, "temporal": 1, "hatchet": 2}, "defaultVariant": "celery",
                   "targeting": {"fractional": [{"cat": [{"var": "tenant"}, "/", {"var": "targetingKey"}]},
                                                ["celery", 50], ["temporal", 30], ["hatchet", 20]]}},
        "numeric": {"state": "ENABLED", "variants": {"low": "low", "high": "high"}, "defaultVariant": "low",
                    "targeting": {"fractional": [{"var": "shard"}, ["low", 1], ["high", 1]]}},
        "nested": {"state": "ENABLED", "variants": {"celery": "c", "temporal": "t", "durable": "d"},
                   "defaultVariant": "durable",
                   "targeting": {"if": [
                       {"$ref": "big_tenants"},
                       {"fractional": [["celery", 70], ["temporal", 30]]},
                       {"and": [{"$ref": "eu"}, {">=": [{"var": "load"}, 0.5]}]}, "temporal",
                       {"in": ["beta", {"var": "tier"}]}, "celery",
                       None]}},
        "semver": {"state": "ENABLED", "variants": {"old": False, "new": True}, "defaultVariant": "old",
                   "targeting": {"if": [{"sem_ver": [{"var": "version"}, ">=", "1.4.0"]}, "new",
                                        {"sem_ver": [{"var": "version"}, "^", "0.9"]}, "new", "old"]}},
        "strings": {"state": "ENABLED", "variants": {"yes": "yes", "no": "no"}, "defaultVariant": "no",
                    "targeting": {"if": [{"or": [{"ends_with": [{"var": "email"}, "@example.com"]},
                                                 {"==": [{"substr": [{"var": "targetingKey"}, -1]}, "7"]},
                                                 {"<": [1, {"%": [{"var": "shard"}, 7]}, 3]}]},
                                         "yes", "no"]}},
        "computed": {"state": "ENABLED", "variants": {"x1": 1, "x2": 2, "x3": 3}, "defaultVariant": "x1",
                     "targeting": {"cat": ["x", {"+": [1, {"%": [{"var": "shard"}, 4]}]}]}},
        # Python's coercions: mixed types compared, searched and concatenated.
        "coerce": {"state": "ENABLED", "variants": {"lt": 1, "zero": 2, "member": 3, "cat": 4, "other": 5},
                   "defaultVariant": "other",
                   "targeting": {"if": [{"<": [{"var": "mixed"}, "5"]}, "lt",
                                        {"==": [{"var": "mixed"}, 0]}, "zero",
                                        {"in": [{"var": "mixed"}, ["a", 1, True, [1]]]}, "member",
                                        {"==": [{"cat": [{"var": "mixed"}, "|", {"substr": [{"var": "targetingKey"}, -3, 2]}]}, "a|1"]}, "cat",
                                        {"missing": ["mixed"]}, None, "other"]}},
        # Computed weights and variant names; a targeting result that is a boolean.
        "dynamic": {"state": "ENABLED", "variants": {"v0": 0, "v1": 1, "b": 2}, "defaultVariant": "b",
                    "targeting": {"fractional": [[{"cat": ["v", {"%": [{"var": "shard"}, 2]}]},
                                                  {"+": [1, {"%": [{"var": "shard"}, 5]}]}], ["b", 2]]}},
        "boolean": {"state": "ENABLED", "variants": {"true": True, "false": False}, "defaultVariant": "false",
                    "targeting": {"<": [{"var": "load"}, 0.5]}},
        "disabled": {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
        "static": {"state": "ENABLED", "variants": {"on": "on", "off": "off"}, "defaultVariant": "off"},
    },
}

TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "", "Acme"]
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "ap-south-1", "eu"]
TIERS = [["beta", "gold"], ["gold"], [], ["beta"]]
MIXED = [0, 1, "5", "10", "a", None, True, False, [], [1], {}, 2.5, "", "0", "4.9", " 3 ", "1e1"]
VERSIONS = ["1.4.0", "1.3.9", "v1.10.2", "0.9.1", "0.8", "2", "1.4.0-rc.1", "banana", "1.4", "0.9.0+build.5"]


def contexts():
    for i in range(KEYS):
        ctx = {"tenant": TENANTS[i % len(TENANTS)], "region": REGIONS[(i // 3) % len(REGIONS)],
               "tier": TIERS[(i // 5) % len(TIERS)], "version": VERSIONS[(i // 2) % len(VERSIONS)],
               "load": (i % 10) / 10, "email": f"user{i}@{'example.com' if i % 9 == 0 else 'corp.io'}",
               "shard": [i, i * 1.5, -i, i * 1000003, 2 ** 40 + i][i % 5],
               "mixed": MIXED[(i // 7) % len(MIXED)]}
        if i % 11 == 3:
            del ctx["mixed"]
        key = None if i % 97 == 5 else f"run-{i:05d}-{(i * 2654435761) % 2 ** 32:08x}"
        yield key, ctx


def main():
    driver = sys.argv[1]
    # flagd-core logs every version sem_ver cannot parse, with a traceback; the contexts have some.
    logging.getLogger("openfeature").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "flags.json")
        with open(path, "w") as f:
            json.dump(FLAGS, f, indent=2)

        core = FlagdCore()
        with open(path) as f:
            core.set_flags(f.read())
        # flagd-core resolves with a type; weft's engine is untyped: each flag by its variants' type.
        resolvers = {}
        for key, flag in FLAGS["flags"].items():
            sample = next(iter(flag["variants"].values()))
            resolvers[key] = (core.resolve_boolean_value, False) if isinstance(sample, bool) else \
                (core.resolve_integer_value, 0) if isinstance(sample, int) else (core.resolve_string_value, "")
        resolvers["no-such-flag"] = (core.resolve_string_value, "")

        def flagd(request):
            ctx = EvaluationContext(targeting_key=request["targetingKey"], attributes=request["attributes"])
            resolve, fallback = resolvers[request["flag"]]
            try:
                d = resolve(request["flag"], fallback, ctx)
            except OpenFeatureError as e:  # as the OpenFeature SDK reports them
                return {"variant": "", "reason": "ERROR", "error_code": e.error_code.value}
            except Exception:  # the SDK turns any other exception into GENERAL
                return {"variant": "", "reason": "ERROR", "error_code": "GENERAL"}
            return {"variant": d.variant or "", "reason": str(getattr(d.reason, "value", d.reason)),
                    "error_code": d.error_code.value if d.error_code else ""}

        requests = []
        for key, ctx in contexts():
            for flag in FLAGS["flags"]:
                requests.append({"flag": flag, "targetingKey": key, "attributes": ctx})
        requests.append({"flag": "no-such-flag", "targetingKey": "k", "attributes": {}})

        text = "".join(json.dumps(r) + "\n" for r in requests)
        started = time.time()
        out = subprocess.run([driver, path], input=text, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            sys.exit(f"flags_eval failed ({out.returncode}): {out.stderr}")
        cpp = [json.loads(line) for line in out.stdout.splitlines()]
        cpp_s = time.time() - started
        assert len(cpp) == len(requests), (len(cpp), len(requests))

        started = time.time()
        mismatches = 0
        counts = {}
        for request, mine in zip(requests, cpp):
            theirs = flagd(request)
            ours = {k: mine[k] for k in ("variant", "reason", "error_code")}
            counts.setdefault(request["flag"], {}).setdefault(ours["variant"], 0)
            counts[request["flag"]][ours["variant"]] += 1
            if ours != theirs:
                mismatches += 1
                if mismatches <= 10:
                    print(f"MISMATCH {request}: weft {ours} ({mine.get('why')}), flagd {theirs}")
        py_s = time.time() - started

        print(f"{len(requests)} evaluations; C++ {cpp_s:.2f}s, Python {py_s:.2f}s")
        for flag, c in sorted(counts.items()):
            print(f"  {flag}: {dict(sorted(c.items()))}")
        if mismatches:
            sys.exit(f"{mismatches} of {len(requests)} evaluations differ")

        # The buckets follow the weights (6000 keys: a few percent of slack).
        def share(flag, variant):
            return counts[flag].get(variant, 0) / sum(counts[flag].values())
        assert abs(share("two", "temporal") - 0.10) < 0.02, counts["two"]
        assert abs(share("three", "a") - 5 / 10) < 0.03 and abs(share("three", "d") - 1 / 10) < 0.02, counts["three"]
        assert abs(share("custom", "hatchet") - 0.20) < 0.03, counts["custom"]
        print(f"{len(requests)} passed, 0 failed")


if __name__ == "__main__":
    main()
