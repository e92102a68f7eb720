#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host-side checks of the generic netlink spec (prints TAP).

1. spec/rust_timewait.yaml validates against the kernel's genetlink-legacy schema with the
   kernel's own ynl spec loader (tools/net/ynl), so `ynl` can drive the family.
2. The YAML's numbering (operations, attribute sets, stats) matches the C glue's enums, since
   the two are written by hand in two languages.

Usage: spec_check.py KERNEL_TREE REPO
"""
import re
import sys

ktree, repo = sys.argv[1], sys.argv[2]
sys.path.insert(0, f"{ktree}/tools/net/ynl/pyynl")
n = 0
failed = 0


def check(ok, what):
    global n, failed
    n += 1
    if not ok:
        failed += 1
    print(f"{'ok' if ok else 'not ok'} {n} - {what}")


try:
    import jsonschema  # noqa: F401  (ynl imports it by name when given a schema)
    schema = f"{ktree}/Documentation/netlink/genetlink-legacy.yaml"
except ImportError:
    schema = ""
try:
    from lib import SpecFamily  # noqa: E402

    spec = SpecFamily(f"{repo}/spec/rust_timewait.yaml", schema)
    if schema:
        check(True, "spec validates against the kernel's genetlink-legacy schema")
    else:
        n += 1
        print(f"ok {n} - spec validates against the kernel's schema # SKIP python3 has no jsonschema")
except Exception as e:  # any failure to load is a failed check, with its reason
    check(False, f"spec loads (and validates against the kernel's schema): {e}")
    print(f"1..{n}")
    sys.exit(1)

glue_c = open(f"{repo}/src/genl.c").read()
glue_h = open(f"{repo}/src/glue.h").read()


def c_enum(text, first):
    """The names of the enum whose first member is `first`, in order."""
    m = re.search(r"enum\s*\w*\s*\{\s*" + re.escape(first) + r"\b(.*?)\}", text, re.S)
    if not m:
        return []
    names = [first] + re.findall(r"\b(RTW_\w+)\b", m.group(1))
    return [x for x in names if not x.startswith("__")]


def norm(c_name, prefix):
    return c_name[len(prefix):].lower().replace("_", "-")


ops = [op.name for op in spec.msgs.values()]
c_ops = [norm(x, "RTW_CMD_") for x in c_enum(glue_c, "RTW_CMD_UNSPEC")[1:]]
check(ops == c_ops, f"operations in YAML order match genl.c's commands ({ops} / {c_ops})")

for set_name, first, prefix in [("main", "RTW_A_UNSPEC", "RTW_A_"),
                                ("entry", "RTW_E_UNSPEC", "RTW_E_")]:
    yaml_attrs = [(a.name, a.value) for a in spec.attr_sets[set_name].attrs.values()]
    c_attrs = [(norm(x, prefix), i) for i, x in enumerate(c_enum(glue_c, first))][1:]
    check(yaml_attrs == c_attrs, f"attribute set '{set_name}' matches genl.c ({len(c_attrs)} attributes)")

stats_yaml = [(a.name, a.value) for a in spec.attr_sets["stats"].attrs.values()]
stats_c = [(norm(x, "RTW_GLUE_STAT_"), i + 1)
           for i, x in enumerate(c_enum(glue_h, "RTW_GLUE_STAT_ENTRIES")) if x != "RTW_GLUE_STAT_COUNT"]
check(stats_yaml == stats_c, f"stats match glue.h's enum rtw_glue_stat ({len(stats_c)} counters)")

subst = [e for e in spec.consts["substate"].entries]
check(subst == ["time-wait", "fin-wait2"], "substate enum: time-wait = 0, fin-wait2 = 1 as glue.h")

print(f"1..{n}")
sys.exit(1 if failed else 0)
