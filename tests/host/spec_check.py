#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host-side checks of the generic netlink spec (prints TAP).

1. spec/rust_timewait.yaml validates against the kernel's genetlink-legacy schema with the
   kernel's own ynl spec loader (tools/net/ynl), so `ynl` can drive the family.
2. The YAML's numbering (operations, attribute sets, stats) matches the C glue's enums, since
   the two are written by hand in two languages.
3. twctl's numbering matches the YAML too (twctl/src/proto.rs: the family's name and version,
   the `cmd`, `main_attr` and `entry_attr` constants, `MAIN_ATTR_NAMES`, `ENTRY_ATTR_NAMES`,
   `STAT_NAMES`; twctl/src/entry.rs: the substate values): an operation, attribute or counter
   added to the YAML and not to twctl fails here.

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


# twctl (Rust, written by hand too): read from its source text.
proto_rs = open(f"{repo}/twctl/src/proto.rs").read()
entry_rs = open(f"{repo}/twctl/src/entry.rs").read()


def check_same(got, want, what):
    """check() that twctl's `got` equals the YAML's `want`, saying where they part."""
    ok = got == want and len(want) > 0
    check(ok, what)
    if not ok:
        i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        at = lambda xs: xs[i] if i < len(xs) else "nothing"  # noqa: E731
        print(f"#   twctl has {len(got)}, the YAML {len(want)}; first difference at {i}: "
              f"twctl {at(got)}, YAML {at(want)}")


def rust_body(pattern, text, opening="{"):
    """The text inside the `opening` bracket that first follows `pattern`, to its match."""
    closing = {"{": "}", "[": "]"}[opening]
    m = re.search(pattern, text)
    start = text.find(opening, m.end()) if m else -1
    if start < 0:
        return ""
    depth, in_str = 0, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            in_str = c != '"' or text[i - 1] == "\\"
        elif c == '"':
            in_str = True
        elif c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    return ""


def rust_consts(module):
    """(NAME, value) of each `pub const NAME: uN = V;` of `pub mod module`, in order."""
    body = rust_body(r"\bpub mod " + module + r"\b", proto_rs)
    return [(k, int(v, 0)) for k, v in re.findall(r"pub const (\w+): u\d+ = (\w+);", body)]


def rust_strs(const):
    """The string literals of `pub const NAME: [&str; N] = [...]`, in order."""
    body = rust_body(r"\bpub const " + const + r": \[&str; \d+\] =", proto_rs, "[")
    return re.findall(r'"([^"]*)"', body)


def const_name(spec_name):
    return spec_name.upper().replace("-", "_")


def by_type(attrs, first):
    """Names indexed by attribute type from `first` (a gap in the YAML's numbering is None)."""
    values = {a.value: a.name for a in attrs}
    return [values.get(i) for i in range(first, max(values, default=first - 1) + 1)]


rs_name = re.search(r'pub const FAMILY_NAME: &str = "([^"]*)";', proto_rs)
rs_version = re.search(r"pub const FAMILY_VERSION: u8 = (\d+);", proto_rs)
version = spec.yaml.get("version", 1)  # the schema's default
check((rs_name and rs_name.group(1), rs_version and int(rs_version.group(1))) == (spec.name, version),
      f"twctl's FAMILY_NAME and FAMILY_VERSION are the YAML's ({spec.name}, version {version})")
check_same(rust_consts("cmd"), [(const_name(op.name), op.value) for op in spec.msgs.values()],
           "twctl's cmd constants are the YAML's operations, in order, with their values")
for set_name, module, names in [("main", "main_attr", "MAIN_ATTR_NAMES"),
                                ("entry", "entry_attr", "ENTRY_ATTR_NAMES")]:
    attrs = list(spec.attr_sets[set_name].attrs.values())
    check_same(rust_consts(module), [(const_name(a.name), a.value) for a in attrs],
               f"twctl's {module} constants are attribute set '{set_name}', in order, with their values")
    check_same(rust_strs(names), ["unspec"] + by_type(attrs, 1),
               f"twctl's {names} name attribute set '{set_name}' by type ({len(attrs)} attributes)")
check_same(rust_strs("STAT_NAMES"), by_type(spec.attr_sets["stats"].attrs.values(), 1),
           f"twctl's STAT_NAMES name the YAML's stats by type minus one ({len(stats_yaml)} counters)")
rs_values = dict(re.findall(r"Substate::(\w+) => (\d+)", rust_body(r"fn to_u8\b", entry_rs)))
rs_names = dict(re.findall(r'Substate::(\w+) => "([^"]*)"', rust_body(r"fn spec_name\b", entry_rs)))
check_same(sorted((rs_names.get(v, f"{v} without spec_name"), int(x)) for v, x in rs_values.items()),
           sorted((k, e.value) for k, e in spec.consts["substate"].entries.items()),
           "twctl's Substate wire values and spec names are the YAML's substate enum")

print(f"1..{n}")
sys.exit(1 if failed else 0)
