#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""docs/conformance.md from a test run: the rtw-conf lines that tests/guest/75-conformance.sh
printed on the guest's console (behind "rtw-tap: ").

    tests/host/conformance.py [CONSOLE_LOG [OUTPUT_MD]]
        defaults: build/test/console.log, docs/conformance.md

Every case becomes a row: what the peer sent, Linux's answer, ours, and a verdict that is
exactly one of match, expected-difference, MISMATCH. The verdict is the guest's; this script
recomputes whether the two transcripts are the same and refuses a log where that disagrees
with it (a console line lost or mangled), and checks that each expected difference names a
decision that exists (a D-number of docs/decisions.md or a row of docs/behaviour.md).

Exit status: 0 when every case is match or expected-difference; 1 when any is MISMATCH; 2 when
the log holds no usable run (no cases, fewer than --min-cases, a verdict that does not follow
from the transcripts, a decision that does not exist). The document is written in every case
but the last.
"""

import argparse
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERDICTS = ("match", "expected-difference", "MISMATCH")
PREFIX = "rtw-tap: rtw-conf: "


class Case:
    def __init__(self, cid, rows, fam, opt, title, settings=""):
        self.id, self.rows, self.fam, self.opt, self.title = cid, rows, fam, opt, title
        self.settings = settings
        self.linux, self.ours, self.notes = [], [], []
        self.verdict = None
        self.decision = self.rfc = self.what = ""


def scenario_lines(log):
    """The lines of the last run of 75-conformance in the log."""
    lines, inside, run = [], False, []
    for line in log.splitlines():
        if line.startswith("rtw-scenario-begin: 75-conformance"):
            inside, run = True, []
        elif line.startswith("rtw-scenario-end: 75-conformance"):
            inside = False
            lines = run
        elif inside:
            run.append(line)
    return lines or run


def parse(lines):
    cases, order, info, announced = {}, [], [], []
    for line in lines:
        m = re.match(r"rtw-tap: # conformance: (\d+) cases in (\d+) s", line)
        if m:
            info.append(f"the scenario took {m.group(2)} s in the guest")
            announced.append(int(m.group(1)))
        if not line.startswith(PREFIX):
            continue
        kind, _, rest = line[len(PREFIX):].partition(" ")
        cid, _, body = rest.partition("|")
        if kind == "case":
            f = body.split("|")
            if len(f) not in (4, 5):
                continue
            cases[cid] = Case(cid, *f)
            order.append(cid)
        elif cid not in cases:
            continue
        elif kind == "linux":
            cases[cid].linux.append(body)
        elif kind == "ours":
            cases[cid].ours.append(body)
        elif kind == "note":
            cases[cid].notes.append(body)
        elif kind == "verdict":
            f = body.split("|")
            c = cases[cid]
            c.verdict = f[0]
            if len(f) >= 4:
                c.decision, c.rfc, c.what = f[1], f[2], "|".join(f[3:])
    return [cases[i] for i in order], info, announced


def known_decisions():
    ds, rows = set(), set()
    try:
        with open(os.path.join(TOP, "docs", "decisions.md"), encoding="utf-8") as f:
            ds = set(re.findall(r"^\| (D\d+) \|", f.read(), re.M))
        with open(os.path.join(TOP, "docs", "behaviour.md"), encoding="utf-8") as f:
            rows = set(re.findall(r"^\| ([TF]\d+) \|", f.read(), re.M))
    except OSError:
        pass
    return ds, rows


def steps(transcript):
    """[(what the peer did, [answers])]: a '>' or '=' line opens a step, '<' lines answer it."""
    out = []
    for line in transcript:
        if line.startswith("> ") or line.startswith("= "):
            out.append([line[2:], []])
        elif line.startswith("< "):
            if not out:
                out.append(["(before the first step)", []])
            out[-1][1].append(line[2:])
    return out


# The IP header of a reply (rtw-script's "ip=" word): what a field is when nothing is special
# about it. len/plen follow from the TCP part and are never shown in the table.
IP_PLAIN = {"tos": "0x00", "ttl": "64", "df": "1", "opt": "0", "id": "0",
            "tc": "0x00", "fl": "conn", "hl": "64", "nh": "6"}
IP_HIDDEN = ("len", "plen")


def ip_fields(reply):
    """{field: value} of a reply's ip= word ({} when it has none)."""
    for w in reply.split():
        if w.startswith("ip="):
            return dict(kv.split(":", 1) for kv in w[3:].split(",") if ":" in kv)
    return {}


def ip_shown(mine, other):
    """The IP part of a reply in the table: fields that are not plain, or that differ from the
    other transcript's reply in the same place; "" when there are none."""
    keys = [k for k, v in mine.items() if k not in IP_HIDDEN and
            (v != IP_PLAIN.get(k) or (other is not None and other.get(k) != v))]
    return "ip(" + ",".join(f"{k}:{mine[k]}" for k in keys) + ")" if keys else ""


def short(reply):
    """A reply line, shortened for the table: no len=0, the usual TS block as 'ts', no IP part
    (answers() adds what is worth showing)."""
    words = [w for w in reply.split() if w != "len=0" and not w.startswith("ip=")]
    words = ["ts" if w == "opts=nop,nop,ts" else w for w in words]
    words = [w for w in words if w != "tsclk=ok"]
    return " ".join(words)


def cell(items):
    esc = [i.replace("|", "\\|") for i in items]
    return "<br>".join(esc) if esc else "–"


def answers(transcript, other=None):
    """One item per step; each reply with the IP fields worth showing (ip_shown), compared with
    the reply in the same place of the other transcript."""
    out, theirs = [], steps(other or [])
    for n, (what, replies) in enumerate(steps(transcript), 1):
        if what.startswith("seen "):
            out.append(f"{n}. {what.rsplit(' ', 1)[-1]}")
            continue
        their = theirs[n - 1][1] if n - 1 < len(theirs) else []
        items = []
        for i, r in enumerate(replies):
            if r == "none":
                continue
            o = ip_fields(their[i]) if other is not None and i < len(their) else None
            ip = ip_shown(ip_fields(r), o)
            items.append(short(r) + (" " + ip if ip else ""))
        out.append(f"{n}. " + ("; ".join(items) or "none"))
    return out


def ip_differences(lr, orr):
    """What differs in the IP headers of two steps' replies, as text."""
    out = []
    for i, (a, b) in enumerate(zip(lr, orr)):
        fa, fb = ip_fields(a), ip_fields(b)
        if not fa or not fb:
            continue  # "none" on one side: no IP header to compare
        for k in fa:
            if fa.get(k) != fb.get(k):
                out.append(f"reply {i + 1}: IP {k} Linux {fa.get(k)}, ours {fb.get(k, '-')}")
    return out


def sent(transcript):
    out = []
    for n, (what, _) in enumerate(steps(transcript), 1):
        if what.startswith("seen "):
            out.append(f"{n}. did the host send {what.split()[1]} before?")
        else:
            w = [x for x in what.split() if x not in ("len=0", "win=65535", "tsecr=echo")]
            out.append(f"{n}. " + " ".join(w))
    return out


def render(cases, info):
    counts = {v: sum(1 for c in cases if c.verdict == v) for v in VERDICTS}
    o = []
    o.append("# Conformance with Linux's own TIME_WAIT\n")
    o.append("<!-- Generated by tests/host/conformance.py from a test run's console log; "
             "do not edit. -->\n")
    o.append(
        "Linux's own TIME_WAIT is the oracle. `tests/guest/75-conformance.sh` builds each "
        "connection twice in the guest, from the host to a scripted peer "
        "(`tests/tools/rtw-script.c`, AF_PACKET in a netns of its own): once the application "
        "`close()`s and Linux's orphaned FIN_WAIT2, then TIME_WAIT, answers (**Linux**); once "
        "the same application runs `twctl handoff --fd 3 --shutdown` instead, which shuts the "
        "socket down and hands it in FIN_WAIT2 to rust_timewait (**ours**). "
        "The peer then sends the same segments to both and records what comes back; the two "
        "transcripts are compared line by line. A second pass runs every case but the expiry "
        "once more as `ID@takeover`: the application `close()`s as in the Linux run, with "
        "`net.rust_timewait.takeover` set, so the module takes the connection over from "
        "Linux's FIN_WAIT2 at the peer's first FIN (D47); its **ours** column is that run, "
        "compared with the first pass's Linux transcript.\n")
    o.append(
        "Notation: flags in the order `FSRPAUEC`; `seq` relative to the host's ISN, `ack` "
        "relative to the peer's ISN (`seq=raw0`: an RST+ACK answering a segment without ACK "
        "carries seq 0; a new connection's SYN-ACK shows `rcv+65537` when its ISN is the old "
        "connection's `snd_nxt + 65537`, Linux's TIME_WAIT rule, `fresh` otherwise); `win` as "
        "on the wire; `ts` the NOP, NOP, timestamp block, `ecr=` the TSecr relative to the "
        "peer's TSval clock (0 when it is 0), `tsval=` the peer's TSval on that clock; the "
        "host's TSval is checked against the connection's clock measured at its SYN (within "
        "5 ms; shown only when it is off). Every reply's IP header is compared too "
        "(`tos` the IPv4 TOS byte, DSCP in its upper six bits and ECN in its lower two, `ttl`, "
        "`df`, `opt` the bytes of IP options, the total length; `tc` the IPv6 traffic class, "
        "`fl` the flow label, `conn` when it is the label the connection's own segments carried "
        "before the steps, `0` or `other`, `hl` the hop limit, `nh` the next header, the payload "
        "length, `id` the IPv4 ID, 0 for Linux's control socket, see `rtw-script.c`); the table shows "
        "`ip(...)` only for the fields that are not `tos:0x00`/`tc:0x00`, `ttl:64`/`hl:64`, "
        "`df:1`, `opt:0`, `id:0`, `fl:conn`, `nh:6`, or that differ between the two answers; `tos=` in "
        "a step is the TOS or traffic class the peer sent (0 otherwise). Every case runs "
        "with `net.ipv4.tcp_rfc1337=1` (the Linux column of docs/behaviour.md), "
        "`net.ipv4.tcp_invalid_ratelimit=0` and `net.ipv4.tcp_ecn=2` unless its settings say "
        "otherwise. `snd`/`rcv` in a step are the peer's next sequence number and "
        "the host's.\n")
    summary = (f"**{len(cases)} cases: {counts['match']} match, "
               f"{counts['expected-difference']} expected-difference, "
               f"{counts['MISMATCH']} MISMATCH.**")
    o.append(summary + (" (" + "; ".join(info) + ")" if info else "") + "\n")
    o.append("| case | rows | family | options | the peer sends | Linux's answer | ours | "
             "verdict | decision, RFC |")
    o.append("|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        ref = f"{c.decision}, {c.rfc}" if c.decision else ""
        title = c.title.replace("|", "\\|")
        opt = c.opt + "".join(f"<br>{x}" for x in c.settings.split())
        o.append(f"| `{c.id}`<br>{title} | {c.rows} | {c.fam} | {opt} | {cell(sent(c.linux))} | "
                 f"{cell(answers(c.linux, c.ours))} | {cell(answers(c.ours, c.linux))} | "
                 f"{c.verdict} | {ref} |")
    o.append("")
    o.append("Families: `v4` IPv4, `v6` IPv6, `m4` an AF_INET6 socket talking to an IPv4 peer "
             "(IPv4-mapped). Options, as the peer's SYN-ACK offers them: `ts` MSS, SACK, "
             "timestamps, window scale 7; `nots` the same without timestamps; `nows` without "
             "window scaling; `bare` MSS only; `ecn` as `ts` with the "
             "ECE of classic ECN on the SYN-ACK, `accecn` with the CWR of Accurate ECN. Under "
             "them, the case's own settings: `tos=` (the application sets `IP_TOS`, and "
             "`IPV6_TCLASS` on an AF_INET6 socket, before `connect()`), `tclass=` (`IPV6_TCLASS` "
             "other than `tos=`), `flowlabel=` (an explicit IPv6 flow label on the socket), "
             "`ecn=N` (`net.ipv4.tcp_ecn`), "
             "`ratelimit=MS` (`net.ipv4.tcp_invalid_ratelimit`), `rfc1337=0`, `listen` (a "
             "listener on the host's port before the steps), `isn=` (the peer's ISN), "
             "`tsbase=` (the start of the peer's TSval clock), `app=` (how the application "
             "ends: `unread` leaves the peer's data unread, `unread-half` also shuts down and "
             "waits for FIN_WAIT2 before `close()`), `bg` (runs alongside the others).\n")
    exp = [c for c in cases if c.verdict == "expected-difference"]
    if exp:
        o.append("## Expected differences\n")
        for c in exp:
            o.append(f"* `{c.id}` ({c.decision}, {c.rfc}): {c.what}")
        o.append("")
    mis = [c for c in cases if c.verdict == "MISMATCH"]
    if mis:
        o.append("## MISMATCH\n")
        for c in mis:
            o.append(f"* `{c.id}`: {c.title}")
            for n in c.notes:
                o.append(f"  * {n}")
            for (w, lr), (_, orr) in zip(steps(c.linux), steps(c.ours)):
                if lr != orr:
                    o.append(f"  * after `{w}`: Linux `{'; '.join(lr)}`, ours `{'; '.join(orr)}`")
                    for d in ip_differences(lr, orr):
                        o.append(f"    * {d}")
            if len(steps(c.linux)) != len(steps(c.ours)):
                o.append("  * the transcripts have different numbers of steps")
        o.append("")
    notes = [(c, n) for c in cases if c.verdict != "MISMATCH" for n in c.notes]
    if notes:
        o.append("## Notes\n")
        for c, n in notes:
            o.append(f"* `{c.id}`: {n}")
        o.append("")
    return "\n".join(o).rstrip("\n") + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", nargs="?", default=os.path.join(TOP, "build", "test", "console.log"))
    ap.add_argument("out", nargs="?", default=os.path.join(TOP, "docs", "conformance.md"))
    ap.add_argument("--min-cases", type=int, default=40)
    a = ap.parse_args()
    with open(a.log, encoding="utf-8", errors="replace") as f:
        cases, info, announced = parse(scenario_lines(f.read()))
    problems = []
    if len(cases) < a.min_cases:
        problems.append(f"{len(cases)} cases in {a.log}, fewer than {a.min_cases}")
    # A case whose lines were lost (a MISMATCH among them) must not vanish from the count.
    if announced and announced[-1] != len(cases):
        problems.append(f"the scenario ran {announced[-1]} cases, the log holds {len(cases)}")
    ds, rows = known_decisions()
    for c in cases:
        if c.verdict not in VERDICTS:
            problems.append(f"{c.id}: no verdict (got {c.verdict!r})")
            continue
        # Two empty transcripts agree about nothing: every case sends something and expects.
        if not c.linux or not c.ours:
            problems.append(f"{c.id}: a transcript is empty (Linux {len(c.linux)} lines, ours {len(c.ours)})")
            continue
        same = c.linux == c.ours
        if c.verdict == "match" and not same:
            problems.append(f"{c.id}: verdict match, but the transcripts differ")
        if c.verdict == "expected-difference":
            if same:
                problems.append(f"{c.id}: verdict expected-difference, but the transcripts agree")
            d = c.decision.replace("behaviour.md ", "")
            if not c.rfc.startswith("RFC"):
                problems.append(f"{c.id}: the expected difference names no RFC")
            if not (d in ds or d in rows):
                problems.append(f"{c.id}: decision {c.decision!r} is neither a D-number of "
                                "docs/decisions.md nor a row of docs/behaviour.md")
    if problems:
        for p in problems:
            print(f"conformance: {p}", file=sys.stderr)
        return 2
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(render(cases, info))
    n = {v: sum(1 for c in cases if c.verdict == v) for v in VERDICTS}
    print(f"conformance: {len(cases)} cases: {n['match']} match, {n['expected-difference']} "
          f"expected-difference, {n['MISMATCH']} MISMATCH; wrote {os.path.relpath(a.out)}")
    for c in cases:
        if c.verdict == "MISMATCH":
            print(f"conformance: MISMATCH {c.id}: {c.title}", file=sys.stderr)
    return 1 if n["MISMATCH"] else 0


if __name__ == "__main__":
    sys.exit(main())
