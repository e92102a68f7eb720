#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Where the guest's CPU goes, per phase of a workload (qemu/profile.sh).

  profile.py sample SOCKET CONSOLE OUT   sample every vCPU's instruction pointer through QEMU's
                                          monitor (`info registers -a`) every 2 ms while the guest
                                          is in a phase, until it prints its end mark
  profile.py report OUT VMLINUX MODULE   per function, its share of each phase's samples and the
                                          difference, the module's functions marked "M:"

A TCG vCPU's instruction pointer is written back at the end of each translated block, so a
sample names the block being run: enough to say which functions take the time. The guest marks
its phases on the console with "rtw-profile: phase NAME" (and "rtw-profile: text ADDR", the
module's .text address); "rtw-profile: phase -" pauses the sampling, "rtw-profile: phase end"
ends it.
"""
import bisect
import collections
import os
import re
import select
import socket
import subprocess
import sys
import time


def sample(sock_path, console, out):
    deadline = time.time() + 600
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock_path)
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("profile.py: no monitor at %s" % sock_path)
            time.sleep(0.5)
    s.settimeout(10)

    def cmd(c):
        s.sendall(c.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        return buf.decode(errors="replace")

    cmd("")
    phase, pos, checked = None, 0, 0.0
    with open(out, "w") as f:
        while True:
            now = time.time()
            if now - checked > 0.2:
                checked = now
                # QEMU gone (the guest finished, or the boot failed): nothing more to sample.
                # (select first: a socket with a timeout waits out its timeout before even a
                # MSG_DONTWAIT recv, and then raises.)
                try:
                    readable, _, _ = select.select([s], [], [], 0)
                    if readable and s.recv(1, socket.MSG_PEEK) == b"":
                        return
                except OSError:
                    return
                data = ""
                if os.path.exists(console):
                    if os.path.getsize(console) < pos:
                        pos = 0
                    with open(console, "rb") as c:
                        c.seek(pos)
                        raw = c.read()
                    # Whole lines only: the console is written a few bytes at a time.
                    raw = raw[: raw.rfind(b"\n") + 1]
                    pos += len(raw)
                    data = raw.decode(errors="replace")
                for m in re.finditer(r"rtw-profile: (phase|text) (\S+)", data):
                    f.write("#%s %s %.3f\n" % (m.group(1), m.group(2), time.time()))
                    f.flush()
                    if m.group(1) == "phase":
                        phase = m.group(2)
                        if phase == "end":
                            return
            if phase and phase != "-":
                try:
                    regs = cmd("info registers -a")
                except (OSError, EOFError):
                    return
                for rip in re.findall(r"RIP=([0-9a-f]{16})", regs):
                    f.write("%s %s\n" % (phase, rip))
            time.sleep(0.002)


def report(out, vmlinux, module):
    syms = []
    nm = subprocess.run(["nm", "-n", vmlinux], capture_output=True, text=True, check=True)
    for line in nm.stdout.splitlines():
        p = line.split()
        if len(p) >= 3 and p[1] in "tTwW":
            syms.append((int(p[0], 16), p[2]))
    lines = open(out).read().splitlines()
    base = next((int(l.split()[1], 16) for l in lines if l.startswith("#text")), None)
    if base is not None:
        od = subprocess.run(["objdump", "-t", module], capture_output=True, text=True, check=True)
        for line in od.stdout.splitlines():
            m = re.match(r"([0-9a-f]{16}) (.{7}) (\S+)\s+[0-9a-f]+\s+(\S+)", line)
            if m and m.group(3) == ".text" and "F" in m.group(2):
                syms.append((base + int(m.group(1), 16), "M:" + m.group(4)))
    syms.sort()
    addrs = [a for a, _ in syms]
    count = collections.defaultdict(collections.Counter)
    total = collections.Counter()
    for l in lines:
        if l.startswith("#"):
            continue
        phase, rip = l.split()
        a = int(rip, 16)
        i = bisect.bisect_right(addrs, a) - 1
        name = "(user)" if a < 0xFFFF800000000000 else syms[i][1] if i >= 0 else "?"
        count[phase][name] += 1
        total[phase] += 1
    phases = list(total)
    print("samples: " + ", ".join("%s %d" % (p, total[p]) for p in phases))
    # How often the sampler got to run (its marks are timed to within its 0.2 s console
    # reads): a sampler the host starves samples mostly when a vCPU idles, and so
    # overstates idle.
    secs, cur, since = collections.Counter(), None, None
    for l in lines:
        p = l.split()
        if p and p[0] == "#phase" and len(p) == 3:
            if cur not in (None, "-"):
                secs[cur] += float(p[2]) - since
            cur, since = p[1], float(p[2])
    if phases and all(secs[p] > 0 for p in phases):
        print("samples per second of phase: " +
              ", ".join("%s %.0f" % (p, total[p] / secs[p]) for p in phases) +
              " (both vCPUs every 2 ms would be about 1000)")
    if len(phases) != 2:
        return
    a, b = phases
    share = lambda p, n: count[p][n] / total[p]
    mod = {p: sum(v for n, v in count[p].items() if n.startswith("M:")) / total[p] for p in phases}
    print("module share: %s %.4f, %s %.4f" % (a, mod[a], b, mod[b]))
    rows = sorted(((share(b, n) - share(a, n), n) for n in set(count[a]) | set(count[b])),
                  reverse=True)
    print("%-9s %-9s %-9s function" % ("diff", a, b))
    for part in (rows[:40], rows[-25:]):
        for d, n in part:
            print("%+.4f   %.4f    %.4f    %s" % (d, share(a, n), share(b, n), n[:100]))
        print("...")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "sample":
        sample(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "report":
        report(*sys.argv[2:])
    else:
        sys.exit(__doc__)
