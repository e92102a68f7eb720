#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The adopt operation (issue 10, D45), driven through the kernel's own ynl library from the YAML
# spec, on real loopback connections: a connection in FIN_WAIT2 becomes a fin-wait2 entry with
# what Linux's TIME_WAIT would copy from the socket (sequence numbers and the TSval offset, each
# compared with what TCP_REPAIR reads from the same socket; ts_recent and its validity; TOS /
# traffic class, mark, priority, txhash; a bound socket's device, by which alone it is found),
# and every other state gets its own errno and no entry: not shut down, the peer's FIN first,
# Linux's own TIME_WAIT, data left unread, a socket in repair mode, already guarded, no such
# connection, an IPv4-mapped IPv6 tuple, an unprivileged caller. By fd with repair (the
# server's path): the module takes the tuple from the socket and leaves it in repair mode, a bare
# close() sends nothing, and a UDP socket or a closed fd is refused. (FIN_WAIT1 cannot be held on
# loopback, where our FIN is acknowledged at once: -EINPROGRESS is left to twctl's host tests.)
. /tests/tap.inc
. /tests/ynl.inc
insmod /lib/modules/rust_timewait.ko || { not_ok "insmod"; tap_done; exit 0; }
ip link set lo up

cat >/tmp/adopt.py <<'EOF'
import errno, os, socket, struct, time
from lib import NlError
from rtw_ynl import check, done, state, stat, ynl

TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ, TCP_TIMESTAMP = 19, 20, 21, 24
SEND_QUEUE, RECV_QUEUE = 2, 1
SO_BINDTOIFINDEX = 62


def wait_state(s, want, secs=10):
    end = time.time() + secs
    while time.time() < end:
        if state(s) == want:
            return True
        time.sleep(0.01)
    return False


FIN_WAIT2, CLOSE_WAIT = 5, 8


def tuple_of(c, fam):
    l, r = c.getsockname(), c.getpeername()
    addr = (lambda a: socket.inet_pton(fam, a[0]))
    return {"family": fam, "local-addr": addr(l), "remote-addr": addr(r),
            "local-port": l[1], "remote-port": r[1]}


def adopt(*tuples):
    return ynl.do("adopt", {"entry": list(tuples)})["entry"]


def pair(fam=socket.AF_INET, setup=None):
    host = "127.0.0.1" if fam == socket.AF_INET else "::1"
    lst = socket.socket(fam, socket.SOCK_STREAM)
    lst.bind((host, 0))
    lst.listen(8)
    c = socket.socket(fam, socket.SOCK_STREAM)
    if setup:
        setup(c)
    c.connect(lst.getsockname()[:2])
    s, _ = lst.accept()
    lst.close()
    return c, s


# Taken: IPv4, with TOS, mark and priority on the socket, timestamps on (Linux's default).
def opts(c):
    c.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 7)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 3)


c, s = pair(setup=opts)
s.sendall(b"x" * 10)
c.recv(10)
c.shutdown(socket.SHUT_WR)
check(wait_state(c, FIN_WAIT2), "the client reaches FIN_WAIT2")
t = tuple_of(c, socket.AF_INET)
r = adopt(t)[0]
print(f"# {r}")
check(r.get("result") == 0, "adopt: taken (result 0)")
check(r.get("substate") == "fin-wait2", "adopt: a fin-wait2 entry")
check(r.get("tos") == 0x28 and r.get("mark") == 7 and r.get("priority") == 3,
      "adopt: TOS, mark and priority copied from the socket")
check(r.get("txhash", 0) != 0, "adopt: the connection's txhash copied")
check("has-ts" in r and "ts-recent-valid" in r and r.get("ts-recent", 0) != 0,
      "adopt: ts_recent read from the socket and valid (userspace cannot read it, D43)")
check(r.get("expires-ms", 0) > 0, "adopt: a lifetime")
# Adopting it again: the tuple is guarded already.
r2 = adopt(t)[0]
check(r2.get("result") == -errno.EEXIST and "snd-nxt" not in r2,
      f"adopt twice: -EEXIST and no state ({r2.get('result')})")
# What TCP_REPAIR reads from the same socket (the handoff's old way) must agree.
c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, SEND_QUEUE)
snd = struct.unpack("I", c.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, RECV_QUEUE)
rcv = struct.unpack("I", c.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
check(r.get("snd-nxt") == snd and r.get("rcv-nxt") == rcv,
      f"adopt: snd_nxt and rcv_nxt as the socket's queues say ({snd}, {rcv})")
mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000000
tsval = struct.unpack("I", c.getsockopt(socket.IPPROTO_TCP, TCP_TIMESTAMP, 4))[0]
drift = ((tsval - mono - r.get("ts-offset", 0)) + 2**31) % 2**32 - 2**31
check(abs(drift) <= 2, f"adopt: the TSval offset puts the module's clock on the socket's ({drift} ms)")
# Close in repair mode: Linux sends nothing; the entry answers the peer's FIN (F5).
c.close()
before = stat("fin-wait2-completed")
s.close()
end = time.time() + 10
while time.time() < end and stat("fin-wait2-completed") == before:
    time.sleep(0.02)
check(stat("fin-wait2-completed") == before + 1, "the entry completed with the peer's FIN")

# IPv6 with a traffic class.
c, s = pair(socket.AF_INET6, lambda c: c.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x48))
c.shutdown(socket.SHUT_WR)
wait_state(c, FIN_WAIT2)
r = adopt(tuple_of(c, socket.AF_INET6))[0]
check(r.get("result") == 0 and r.get("family") == 10 and r.get("tos") == 0x48,
      f"adopt IPv6: taken, traffic class 0x48 ({r.get('result')}, {r.get('tos')})")
c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
c.close()
s.close()

# By fd, with repair: the module takes the tuple from the caller's socket and leaves it in
# repair mode, so a bare close() sends nothing (the server's path, HandoffQueue).
def adopt_fd(fd, repair=True):
    e = {"fd": fd}
    if repair:
        e["repair"] = True
    return adopt(e)[0]


c, s = pair()
c.shutdown(socket.SHUT_WR)
wait_state(c, FIN_WAIT2)
t = tuple_of(c, socket.AF_INET)
r = adopt_fd(c.fileno())
check(r.get("result") == 0 and r.get("fd") == c.fileno() and r.get("local-port") == t["local-port"]
      and r.get("remote-port") == t["remote-port"] and r.get("local-addr") == t["local-addr"],
      f"adopt by fd: taken, the reply names the socket's tuple ({r.get('result')})")
check(c.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR) == 1, "adopt by fd with repair: the socket is in repair mode")
before = stat("fin-wait2-completed")
c.close()
s.close()
end = time.time() + 10
while time.time() < end and stat("fin-wait2-completed") == before:
    time.sleep(0.02)
check(stat("fin-wait2-completed") == before + 1, "after a bare close(), the entry completes with the peer's FIN")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
bad = os.open("/dev/null", os.O_RDONLY)
os.close(bad)
rs = adopt({"fd": u.fileno()}, {"fd": bad})
check([x.get("result") for x in rs] == [-errno.ENOTSOCK, -errno.EBADF],
      f"adopt by fd: a UDP socket -ENOTSOCK, a closed fd -EBADF ({[x.get('result') for x in rs]})")
u.close()
try:
    adopt({"fd": 0, "family": 2})
    check(False, "fd and a tuple together are refused")
except NlError as e:
    check(e.error == errno.EINVAL and "not both" in str(e), f"fd and a tuple together: EINVAL ({e})")

# A socket bound to a device is found only by it (inet_bound_dev_eq), and keeps it.
c, s = pair(setup=lambda c: c.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo"))
c.shutdown(socket.SHUT_WR)
wait_state(c, FIN_WAIT2)
lo = struct.unpack("i", c.getsockopt(socket.SOL_SOCKET, SO_BINDTOIFINDEX, 4))[0]
t = tuple_of(c, socket.AF_INET)
r = adopt(t)[0]
check(r.get("result") == -errno.ENOENT, f"a bound socket without its device: -ENOENT ({r.get('result')})")
r = adopt(dict(t, **{"bound-ifindex": lo}))[0]
check(r.get("result") == 0 and r.get("bound-ifindex") == lo,
      f"with bound-ifindex {lo}: taken, the device kept ({r.get('result')}, {r.get('bound-ifindex')})")
g = ynl.do("get", {"entry": [dict(t, **{"bound-ifindex": lo})]})["entry"][0]
check(g.get("snd-nxt") == r.get("snd-nxt"), "get finds it by its device")
ynl.do("del", {"entry": [dict(t, **{"bound-ifindex": lo})]})
c.close()
s.close()

# A socket already in repair mode belongs to whoever restores it.
c, s = pair()
c.shutdown(socket.SHUT_WR)
wait_state(c, FIN_WAIT2)
c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
r = adopt(tuple_of(c, socket.AF_INET))[0]
check(r.get("result") == -errno.EOPNOTSUPP, f"a socket in repair mode: -EOPNOTSUPP ({r.get('result')})")
c.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, -1)
c.close()
s.close()

# Refusals in one batch, each with its own errno, in request order.
est, est_s = pair()                       # not shut down
cw, cw_s = pair()                          # the peer's FIN first: CLOSE_WAIT
cw_s.shutdown(socket.SHUT_WR)
wait_state(cw, CLOSE_WAIT)
tw, tw_s = pair()                          # both FINs: Linux's own TIME_WAIT holds it
t_tw = tuple_of(tw, socket.AF_INET)
tw.shutdown(socket.SHUT_WR)
wait_state(tw, FIN_WAIT2)
tw_s.close()
time.sleep(0.2)
ur, ur_s = pair()                          # data left unread
ur_s.sendall(b"unread")
time.sleep(0.1)
ur.shutdown(socket.SHUT_WR)
wait_state(ur, FIN_WAIT2)
gone = dict(tuple_of(est, socket.AF_INET), **{"remote-port": 9})
entries_before = stat("entries")
rs = adopt(tuple_of(est, socket.AF_INET), tuple_of(cw, socket.AF_INET),
           tuple_of(ur, socket.AF_INET), gone, t_tw)
got = [r.get("result") for r in rs]
print(f"# results {got}")
check(got[0] == -errno.ENOTCONN, "established, not shut down: -ENOTCONN")
check(got[1] == -errno.EALREADY, "the peer's FIN came first (CLOSE_WAIT): -EALREADY")
check(got[4] == -errno.EALREADY, "Linux's TIME_WAIT holds the tuple: -EALREADY")
check(got[2] == -errno.ENOTEMPTY, "data received and not read: -ENOTEMPTY (close() would reset)")
check(got[3] == -errno.ENOENT, "no such connection: -ENOENT")
check(stat("entries") == entries_before, "no refusal left an entry")
check(state(ur) == FIN_WAIT2 and ur.recv(10) == b"unread",
      "the refused socket is untouched: its data still readable")
for x in (est, est_s, cw, cw_s, ur, ur_s, tw):
    x.close()

# An IPv4-mapped IPv6 tuple: its segments arrive as IPv4, so an IPv6 entry would guard nothing.
try:
    mapped = bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])
    adopt({"family": 10, "local-addr": mapped, "remote-addr": mapped, "local-port": 1,
           "remote-port": 2})
    check(False, "an IPv4-mapped IPv6 tuple is refused")
except NlError as e:
    check(e.error == errno.EINVAL and "IPv4-mapped" in str(e),
          f"an IPv4-mapped IPv6 tuple: EINVAL, extack says why ({e})")

# A malformed request: extack names it, nothing happens.
try:
    ynl.do("adopt", {})
    check(False, "an empty adopt is refused")
except NlError as e:
    check(e.error == errno.EINVAL and "no entry attribute" in str(e),
          f"an empty adopt: EINVAL, extack says so ({e})")

done()
EOF
ynl_py /tmp/adopt.py

# Unprivileged: adopt needs CAP_NET_ADMIN, like add (EPERM before any lookup).
cat >/tmp/adopt-nobody.py <<'EOF'
import errno, sys
from lib import YnlFamily, NlError
try:
    YnlFamily("/ynl/rust_timewait.yaml", schema="").do("adopt", {"entry": [{"family": 2,
        "local-addr": bytes([127, 0, 0, 1]), "remote-addr": bytes([127, 0, 0, 1]),
        "local-port": 1, "remote-port": 2}]})
except NlError as e:
    sys.exit(0 if e.error == errno.EPERM else 1)
sys.exit(1)
EOF
check "adopt as nobody: EPERM" su nobody -s /bin/sh -c "PYTHONPATH=$PYTHONPATH python3 /tmp/adopt-nobody.py"
rmmod rust_timewait
tap_done
