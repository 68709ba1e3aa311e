#!/usr/bin/env python3
"""weft's flag engine against the official Python flagd evaluator, on the same flag file.

    flagd_parity.py FLAGS_EVAL

Evaluates every flag below for 6000 generated contexts with the C++ engine (the flags_eval driver)
and with flagd-core, the evaluator of the official flagd provider's in-process and file resolvers
(openfeature-flagd-core, pinned in scripts/requirements-peers.txt), and fails on the first context for which the variant, the reason or the error code differ. Also
checks the distribution of the fractional flags against their weights, so that two engines that
agreed on a broken hash would still fail. Then 3000 random rules (seeded) over every operator and
mixed types, compared on the exact value each computes, and 20000 random values to bucket by
(every CBOR float width, 64-bit integers, nested maps and arrays).
"""
import json
import logging
import os
import random
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


# Random rules: every JsonLogic operator on mixed types, its result made a string by cat, so that
# flagd-core's "Resolved variant <str(result)> not in variants config." shows the exact value.
# (One known difference is kept out by the seed: two arrays read from the same context field are
# == in Python, being one object; weft's == never finds two arrays equal, as JsonLogic intends.)
R = random.Random(7)
RANDOM_RULES = 3000
BUCKETING_VALUES = 20000
RANDOM_CONTEXTS = [("run-1", {"a": 1, "b": "2", "s": "1.2.3", "l": [1, "a", 0], "o": {"k": "v"}, "n": None, "x": {"y": 3}}),
                   (None, {"a": 0, "b": "", "s": "h\u00e9llo", "l": [], "o": {}, "x": {"y": "z"}, "u": 2.5})]
LITS = [0, 1, -1, 2, 2.5, -0.5, 10, "", "a", "abc", "1", "10", " 2 ", "2.5", "x.y", True, False, None, [], [1, "a"], [2], {}, {"p": 1, "q": 2}, "1.2.3", "v2.0", "é"]
VARS = ["a", "b", "s", "l", "o", "n", "x.y", "l.0", "l.1", "l.length", "s.1", "missing", "", "targetingKey", "$flagd.flagKey", "o.k", "u"]
def rule(d):
    """A random JsonLogic rule of depth d over the contexts of random_contexts()."""
    if d <= 0 or R.random() < 0.25:
        if R.random() < 0.5: return {"var": R.choice(VARS)} if R.random() < 0.8 else {"var": [R.choice(VARS), R.choice(LITS[:12])]}
        return R.choice(LITS) if not isinstance(R.choice(LITS), dict) else 1
    op = R.choice(["==", "===", "!=", "!==", "<", "<=", ">", ">=", "!", "!!", "and", "or", "if", "in", "cat", "substr", "+", "-", "*", "/", "%", "min", "max", "merge", "missing", "missing_some", "map", "filter", "all", "some", "none", "starts_with", "ends_with", "sem_ver", "<3", "reduce"])
    sub = lambda: rule(d - 1)
    if op in ("!", "!!"): return {op: [sub()]}
    if op in ("and", "or", "+", "*", "min", "max", "cat", "merge"): return {op: [sub() for _ in range(R.randint(0 if op not in ("min","max") else 1, 3))]}
    if op == "if": return {"if": [sub() for _ in range(R.randint(1, 5))]}
    if op == "<3": return {R.choice(["<", "<="]): [sub(), sub(), sub()]}
    if op == "substr": return {"substr": [sub(), R.choice([0, 1, -1, -2, 3, 2.7, "1", None])] + ([R.choice([1, -1, 2, 0, "x"])] if R.random() < 0.5 else [])}
    if op == "-": return {"-": [sub()] + ([sub()] if R.random() < 0.7 else [])}
    if op == "missing": return {"missing": [R.choice(VARS) for _ in range(R.randint(1, 3))]}
    if op == "missing_some": return {"missing_some": [R.randint(0, 3), [R.choice(VARS) for _ in range(R.randint(1, 3))]]}
    if op in ("map", "filter", "all", "some", "none"): return {op: [R.choice([{"var": "l"}, [1, 2, 0], [], {"var": "n"}, ["a", ""]]), R.choice([{"var": ""}, {">": [{"var": ""}, 0]}, {"cat": [{"var": ""}, "!"]}, {"!": {"var": ""}}])]}
    if op == "reduce": return {"reduce": [R.choice([{"var": "l"}, [1, 2, 3]]), {"+": [{"var": "accumulator"}, {"var": "current"}]}, R.choice([0, 1])]}
    if op in ("starts_with", "ends_with"): return {op: [sub(), sub()]}
    if op == "sem_ver": return {"sem_ver": [R.choice(["1.2.3", "v1.2", "2", {"var": "s"}, "1.2.3-rc.1", 1.5, "x"]), R.choice(["=", "!=", "<", "<=", ">", ">=", "^", "~"]), R.choice(["1.2.3", "1", "1.2.3-rc.2", "2.0.0"])]}
    return {op: [sub(), sub()]}


def load(flags, tmp, name):
    """Writes a flag file; returns its path and flagd-core loaded with it."""
    text = json.dumps(flags)
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    core = FlagdCore()
    core.set_flags(text)
    return path, core


def run_driver(driver, path, requests):
    """The C++ engine's evaluations of the requests, in order."""
    out = subprocess.run([driver, path], input="".join(json.dumps(r) + "\n" for r in requests),
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"flags_eval failed on {path} ({out.returncode}): {out.stderr}")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == len(requests), (len(lines), len(requests))
    return lines


def compare_random_rules(driver, tmp):
    flags = {f"r{i}": {"state": "ENABLED", "variants": {"zz": 1}, "targeting": {"cat": [rule(4)]}}
             for i in range(RANDOM_RULES)}
    path, core = load({"flags": flags}, tmp, "random.json")
    requests = [{"flag": k, "targetingKey": t, "attributes": a} for k in flags for t, a in RANDOM_CONTEXTS]
    differ = 0
    for request, mine in zip(requests, run_driver(driver, path, requests)):
        ctx = EvaluationContext(request["targetingKey"], request["attributes"])
        try:
            d = core.resolve_integer_value(request["flag"], 0, ctx)
            theirs = (d.variant or "", str(getattr(d.reason, "value", d.reason)), "")
        except OpenFeatureError as e:
            theirs = ("", "ERROR", e.error_message if e.error_code.value == "GENERAL" else e.error_code.value)
        except Exception as e:  # ZeroDivisionError & co.: GENERAL, with Python's own words
            theirs = ("", "ERROR", "exception")
        ours = (mine["variant"], mine["reason"],
                mine["error_message"] if mine["error_code"] == "GENERAL" else mine["error_code"])
        if theirs[2] == "exception" and mine["error_code"] == "GENERAL" and not mine["error_message"].startswith("Resolved"):
            continue
        if ours != theirs:
            differ += 1
            if differ <= 10:
                print(f"MISMATCH {json.dumps(flags[request['flag']]['targeting'])} {request['targetingKey']}: "
                      f"weft {ours}, flagd {theirs}")
    print(f"{len(requests)} evaluations of {RANDOM_RULES} random rules, {differ} differ")
    return len(requests), differ


def bucketing_value(d=2):
    """A random JSON value to bucket by: floats of every CBOR width, big integers, nested maps."""
    k = R.randint(0, 9 if d > 0 else 6)
    if k == 0: return R.choice([0.5, 1.5, -2.25, 65504.0, 65505.0, 6.1e-5, 5.960464477539063e-08, 1e-7, 3.4028234663852886e+38, 1e39, 0.1, -0.0, 1e300, 2.0**63, 2.0**64, -2.0**63, 123456.789, float(R.randint(-10**6, 10**6)) / 64])
    if k == 1: return R.randint(-2**63, 2**63 - 1)
    if k == 2: return R.randint(0, 2**64 - 1)
    if k == 3: return R.choice(["", "a", "é", "日本", "x" * R.randint(0, 300)])
    if k == 4: return R.choice([True, False])
    if k == 5: return R.randint(-30, 30)
    if k == 6: return R.random() * 10 ** R.randint(-10, 10)
    if k in (7, 8): return {("k" * R.randint(0, 30)) + str(R.randint(0, 99)): bucketing_value(d - 1) for _ in range(R.randint(0, 4))}
    return [bucketing_value(d - 1) for _ in range(R.randint(0, 30))]


def compare_bucketing_values(driver, tmp):
    flags = {"f": {"state": "ENABLED", "variants": {c: 1 for c in "abcdefg"}, "defaultVariant": "g",
                   "targeting": {"fractional": [{"var": "v"}, ["a", 7], ["b", 1], ["c", 100], ["d", 3], ["e", 1000], ["f"]]}}}
    path, core = load({"flags": flags}, tmp, "bucketing.json")
    requests = [{"flag": "f", "targetingKey": "k", "attributes": {"v": bucketing_value()}} for _ in range(BUCKETING_VALUES)]
    differ = 0
    for request, mine in zip(requests, run_driver(driver, path, requests)):
        # The value as it reads back from JSON, as the C++ side has it (-0.0, 1e300, ...).
        attributes = json.loads(json.dumps(request["attributes"]))
        d = core.resolve_integer_value("f", 0, EvaluationContext("k", attributes))
        if (d.variant or "") != mine["variant"]:
            differ += 1
            if differ <= 10:
                print(f"MISMATCH bucketing by {json.dumps(attributes)[:200]}: weft {mine['variant']}, flagd {d.variant}")
    print(f"{len(requests)} random bucketing values, {differ} differ")
    return len(requests), differ


def main():
    driver = sys.argv[1]
    # flagd-core logs every version sem_ver cannot parse, with a traceback; the contexts have some.
    logging.getLogger("openfeature").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        path, core = load(FLAGS, tmp, "flags.json")
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

        started = time.time()
        cpp = run_driver(driver, path, requests)
        cpp_s = time.time() - started

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
        random_total, random_differ = compare_random_rules(driver, tmp)
        bucketing_total, bucketing_differ = compare_bucketing_values(driver, tmp)
        if mismatches or random_differ or bucketing_differ:
            sys.exit(f"{mismatches} of {len(requests)} evaluations differ, {random_differ} of {random_total} "
                     f"of the random rules, {bucketing_differ} of {bucketing_total} of the bucketing values")

        # The buckets follow the weights (6000 keys: a few percent of slack).
        def share(flag, variant):
            return counts[flag].get(variant, 0) / sum(counts[flag].values())
        assert abs(share("two", "temporal") - 0.10) < 0.02, counts["two"]
        assert abs(share("three", "a") - 5 / 10) < 0.03 and abs(share("three", "d") - 1 / 10) < 0.02, counts["three"]
        assert abs(share("custom", "hatchet") - 0.20) < 0.03, counts["custom"]
        print(f"{len(requests) + random_total + bucketing_total} passed, 0 failed")


if __name__ == "__main__":
    main()
