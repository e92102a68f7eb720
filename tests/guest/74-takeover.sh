#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The takeover (D47, src/takeover.c): with net.rust_timewait.takeover set, a connection ended
# with a plain close() becomes an entry when the peer's FIN comes, if Linux holds it then in
# FIN_WAIT2 (our FIN acknowledged): the entry completes as the FIN asks (the peer gets its ACK
# and closes), and Linux keeps nothing of it. Not taken: with the sysctl off; a socket shut down
# but not closed (a full socket: its TIME_WAIT stays Linux's); the end that connect()ed (its
# port stays Linux's, unless takeover is 2); data after our close(); a full table; a netns that
# did not ask. Entries
# are charged to the memory cgroup of the task that set the sysctl. IPv4 and IPv6, on
# loopback, real sockets (loopback skips early demux: the lookup path; 75-conformance's veth
# takes the early-demux one).
. /tests/tap.inc
. /tests/ynl.inc
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
ip link set lo up
T=/proc/sys/net/rust_timewait/takeover

check_eq "takeover is off by default" 0 "$(cat $T 2>/dev/null)"
check "takeover refuses 3 and -1 (EINVAL)" sh -c "! echo 3 >$T && ! echo -1 >$T && [ \$(cat $T) = 0 ]"
check "takeover takes 1 and 2" sh -c "echo 1 >$T && [ \$(cat $T) = 1 ] && echo 2 >$T && [ \$(cat $T) = 2 ] && echo 0 >$T"

cat >/tmp/takeover.py <<'EOF'
import socket, subprocess, time
from lib import NlError
from rtw_ynl import check, done, stat, until, ynl

FIN_WAIT2, TIME_WAIT = 5, 6
TAKEOVER = "/proc/sys/net/rust_timewait/takeover"


def takeover(on):
    with open(TAKEOVER, "w") as f:
        f.write(str(int(on)))


def linux_states(fam, lport, rport):
    """States of Linux's sockets for the tuple (TIME_WAIT and FIN_WAIT2 ones included)."""
    out = []
    with open("/proc/net/tcp" if fam == socket.AF_INET else "/proc/net/tcp6") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == lport
                    and int(fields[2].split(":")[1], 16) == rport):
                out.append(int(fields[3], 16))
    return out


def entry(fam, c):
    l, r = c[1], c[2]
    key = {"family": int(fam), "local-addr": socket.inet_pton(fam, l[0]),
           "remote-addr": socket.inet_pton(fam, r[0]), "local-port": l[1], "remote-port": r[1]}
    try:
        return ynl.do("get", {"entry": [key]})["entry"][0]
    except NlError:
        return None


def connection(fam=socket.AF_INET, addr="127.0.0.1"):
    """A connection on loopback: (the connecting end, the accepted end); no listener left."""
    lst = socket.socket(fam)
    lst.bind((addr, 0))
    lst.listen(4)
    p = socket.socket(fam)
    p.connect(lst.getsockname()[:2])
    s, _ = lst.accept()
    lst.close()
    return p, s


def closed_pair(fam, addr):
    """A connection whose accepted end close()d (Linux's FIN_WAIT2 once the ACK is in);
    (the connecting end, our address, the peer's)."""
    p, s = connection(fam, addr)
    local, remote = s.getsockname()[:2], s.getpeername()[:2]
    s.sendall(b"reply")
    s.close()
    p.recv(16)
    return p, local, remote


def fin_wait2(fam, c):
    return until(lambda: linux_states(fam, c[1][1], c[2][1]) == [FIN_WAIT2])


for fam, addr, name in ((socket.AF_INET, "127.0.0.1", "IPv4"), (socket.AF_INET6, "::1", "IPv6")):
    # Off: Linux's TIME_WAIT keeps the connection.
    takeover(False)
    taken = stat("taken-over")
    c = closed_pair(fam, addr)
    check(fin_wait2(fam, c), f"{name}: close() leaves Linux's FIN_WAIT2 once our FIN is acknowledged")
    c[0].close()
    check(until(lambda: linux_states(fam, c[1][1], c[2][1]) == [TIME_WAIT])
          and entry(fam, c) is None and stat("taken-over") == taken,
          f"{name}, takeover off: the peer's FIN leaves Linux's TIME_WAIT and no entry")

    # On: the peer's FIN makes the entry; the peer gets its ACK; Linux keeps nothing.
    takeover(True)
    added, completed, acks = stat("added"), stat("fin-wait2-completed"), stat("acks-sent")
    c = closed_pair(fam, addr)
    check(fin_wait2(fam, c), f"{name}: close() leaves Linux's FIN_WAIT2 (nothing taken before the FIN)")
    check(entry(fam, c) is None, f"{name}: no entry before the peer's FIN")
    peer = c[0]
    peer.close()
    e = None
    check(until(lambda: (entry(fam, c) or {}).get("substate") == "time-wait"),
          f"{name}, takeover on: the peer's FIN makes a time-wait entry")
    e = entry(fam, c) or {}
    check(until(lambda: stat("taken-over") == taken + 1 and stat("added") == added + 1
                and stat("fin-wait2-completed") == completed + 1 and stat("acks-sent") >= acks + 1),
          f"{name}: taken-over, added and fin-wait2-completed count it, and our ACK went out")
    check("has-ts" in e and "ts-recent-valid" in e and e.get("ts-recent", 0) != 0,
          f"{name}: the entry has the connection's timestamps ({e})")
    check(until(lambda: linux_states(fam, c[2][1], c[1][1]) == []),
          f"{name}: the peer's end is closed: our ACK acknowledged its FIN ({linux_states(fam, c[2][1], c[1][1])})")
    check(until(lambda: linux_states(fam, c[1][1], c[2][1]) == []),
          f"{name}: nothing of Linux's is left for our end ({linux_states(fam, c[1][1], c[2][1])})")

# A connection this host opened (connect() chose the port): its port stays Linux's with
# takeover 1; 2 takes it over too.
for mode in (1, 2):
    takeover(mode)
    taken = stat("taken-over")
    p, s = connection()
    local, remote = p.getsockname(), p.getpeername()
    p.close()
    until(lambda: linux_states(socket.AF_INET, local[1], remote[1]) == [FIN_WAIT2])
    s.close()
    if mode == 1:
        check(until(lambda: linux_states(socket.AF_INET, local[1], remote[1]) == [TIME_WAIT])
              and stat("taken-over") == taken,
              "takeover 1, the connecting end (its port chosen by connect()): Linux's TIME_WAIT, nothing taken over")
    else:
        check(until(lambda: stat("taken-over") == taken + 1
                    and linux_states(socket.AF_INET, local[1], remote[1]) == []),
              "takeover 2, the connecting end: taken over, nothing of Linux's left")
takeover(True)

# Data and FIN in one segment after our close(): no FIN_WAIT2 completion; Linux resets.
taken = stat("taken-over")
c = closed_pair(socket.AF_INET, "127.0.0.1")
fin_wait2(socket.AF_INET, c)
c[0].setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
c[0].send(b"late")
c[0].close()
check(until(lambda: linux_states(socket.AF_INET, c[1][1], c[2][1]) == [])
      and stat("taken-over") == taken and entry(socket.AF_INET, c) is None,
      "data with the FIN after our close(): nothing taken over, Linux's socket resets and goes")

# An accepted socket only shut down, not close()d, when the peer's FIN comes is a full
# socket: Linux's.
takeover(True)
taken = stat("taken-over")
p, s = connection()
local, remote = s.getsockname(), s.getpeername()
s.shutdown(socket.SHUT_WR)
until(lambda: p.recv(1) == b"")
until(lambda: linux_states(socket.AF_INET, local[1], remote[1]) == [FIN_WAIT2])
p.close()
check(until(lambda: linux_states(socket.AF_INET, local[1], remote[1]) == [TIME_WAIT])
      and stat("taken-over") == taken,
      "an accepted socket shut down but not closed: the peer's FIN leaves Linux's TIME_WAIT, nothing taken over")
s.close()

# A full table: the connection stays Linux's.
ynl.do("flush", {})
with open("/proc/sys/net/rust_timewait/maxtcptw", "w") as f:
    f.write("32")
for i in range(32):
    ynl.do("add", {"entry": [{"family": 2, "local-addr": bytes([127, 0, 0, 1]),
                              "remote-addr": bytes([127, 0, 0, 3]), "local-port": 1000 + i,
                              "remote-port": 2000, "snd-nxt": 1, "rcv-nxt": 1, "last-win": 1}]})
taken = stat("taken-over")
c = closed_pair(socket.AF_INET, "127.0.0.1")
check(fin_wait2(socket.AF_INET, c), "full table: FIN_WAIT2 reached")
c[0].close()
check(until(lambda: linux_states(socket.AF_INET, c[1][1], c[2][1]) == [TIME_WAIT])
      and stat("taken-over") == taken and entry(socket.AF_INET, c) is None,
      "full table (32 of 32): Linux's TIME_WAIT keeps the connection")
ynl.do("flush", {})
with open("/proc/sys/net/rust_timewait/maxtcptw", "w") as f:
    f.write("0")

# Another netns, whose hooks are registered (takeover set, then cleared there) while this one
# has takeover on: nothing taken there, by its own counter.
r = subprocess.run(["/usr/local/bin/ip", "netns", "exec", "other", "sh", "-c", """
echo 1 >/proc/sys/net/rust_timewait/takeover && echo 0 >/proc/sys/net/rust_timewait/takeover &&
python3 -c '
import socket, time
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(1)
p = socket.socket(); p.connect(lst.getsockname()); s, _ = lst.accept()
s.close(); time.sleep(0.5); p.close(); time.sleep(0.5)
print(open("/proc/net/tcp").read().count(" 06 "))
' && twctl --json stats | tr ',{}' '\\n\\n\\n' | grep taken_over
"""], capture_output=True, text=True)
out = r.stdout.split()
check(len(out) >= 3 and out[0] == "1" and out[-1] == "0",
      f"a netns with its hooks but takeover 0 keeps Linux's TIME_WAIT, takes nothing ({r.stdout.strip()} {r.stderr.strip()})")

# Charged to the memory cgroup of whoever set takeover (D34, D47): nothing else runs there.
CG = "/sys/fs/cgroup/rtwtk"


def cg_slab():
    with open(CG + "/memory.stat") as f:
        for line in f:
            k, v = line.split()
            if k == "slab":
                return int(v)


takeover(False)
subprocess.run(["sh", "-c", f"echo $$ >{CG}/cgroup.procs; echo 1 >{TAKEOVER}"], check=True)
time.sleep(0.5)
s0, taken, n = cg_slab(), stat("taken-over"), 400
pairs = [closed_pair(socket.AF_INET, "127.0.0.1") for _ in range(n)]


def all_fin_wait2():
    with open("/proc/net/tcp") as f:
        st = {(int(x[1].split(":")[1], 16), int(x[2].split(":")[1], 16)): int(x[3], 16)
              for x in (line.split() for line in f.readlines()[1:])}
    return all(st.get((c[1][1], c[2][1])) == FIN_WAIT2 for c in pairs)


check(until(all_fin_wait2), f"{n} connections close()d, all in Linux's FIN_WAIT2")
for c in pairs:
    c[0].close()
check(until(lambda: stat("taken-over") == taken + n), f"{n} connections taken over")
# Entries charged from softirq reach memory.stat with the periodic flush (every 2 s).
check(until(lambda: cg_slab() - s0 >= n * 64, 60),
      f"{n} takeover entries charged to the cgroup of the task that set takeover (slab {s0} -> {cg_slab()} bytes)")
ynl.do("flush", {})
takeover(False)
done()
EOF
IP=/usr/local/bin/ip
grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || { mkdir -p /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; }
echo +memory >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/rtwtk
$IP netns add other && $IP -n other link set lo up
ynl_py /tmp/takeover.py
$IP netns del other

# Unloading with taken-over entries in the table frees them (90-kmemleak checks the leaks).
check "rmmod with taken-over entries" rmmod rust_timewait
tap_done
