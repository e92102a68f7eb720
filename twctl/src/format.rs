// SPDX-License-Identifier: GPL-2.0

//! Output: `ss`-like tables, counters, and JSON (serde_json). Pure.

use serde_json::{json, Value};

use crate::client::AddOutcome;
use crate::entry::{Entry, Tuple, AF_INET};
use crate::handoff::Outcome;
use crate::line::format_line;
use crate::proto::Stats;

/// Remaining lifetime for people: "59.8s", "-" when unknown.
pub fn format_expires(ms: Option<u32>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) => format!("{}.{}s", ms / 1000, (ms % 1000) / 100),
    }
}

fn pad_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{:<w$} ", cell, w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table of `twctl list`, like `ss -tan state time-wait`: State, Recv-Q, Send-Q, Local
/// Address:Port, Peer Address:Port, Expires; `extended` adds the entry's fields (in the add
/// file's syntax: the connection's attributes, tos= to txhash=, only when not 0).
pub fn entries_table(entries: &[Entry], header: bool, extended: bool) -> String {
    let mut rows = Vec::new();
    if header {
        let mut h: Vec<String> = [
            "State",
            "Recv-Q",
            "Send-Q",
            "Local Address:Port",
            "Peer Address:Port",
            "Expires",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if extended {
            h.push("Details".into());
        }
        rows.push(h);
    }
    for e in entries {
        let mut r = vec![
            e.substate.ss_name().to_string(),
            "0".into(),
            "0".into(),
            e.tuple.local.to_string(),
            e.tuple.remote.to_string(),
            format_expires(e.expires_ms),
        ];
        if extended {
            r.push(details(e));
        }
        rows.push(r);
    }
    pad_table(&rows)
}

/// The entry's fields after the tuple, in the add file's syntax.
pub fn details(e: &Entry) -> String {
    let line = format_line(e);
    // Skip "LOCAL REMOTE ".
    line.splitn(3, ' ').nth(2).unwrap_or("").to_string()
}

/// One entry as JSON. The connection's attributes (`tos` to `txhash`) are there only when not
/// 0, as the kernel reports them.
pub fn entry_json(e: &Entry) -> Value {
    let mut v = json!({
        "state": e.substate.spec_name(),
        "family": if e.tuple.family() == AF_INET { "inet" } else { "inet6" },
        "local": e.tuple.local.to_string(),
        "remote": e.tuple.remote.to_string(),
        "local_addr": e.tuple.local.ip().to_string(),
        "local_port": e.tuple.local.port(),
        "remote_addr": e.tuple.remote.ip().to_string(),
        "remote_port": e.tuple.remote.port(),
        "ifindex": e.tuple.ifindex(),
        "snd_nxt": e.snd_nxt,
        "rcv_nxt": e.rcv_nxt,
        "last_win": e.last_win,
        "rcv_wscale": e.rcv_wscale,
        "has_ts": e.has_ts,
        "ts_recent": e.ts_recent,
        "ts_offset": e.ts_offset,
        "expires_ms": e.expires_ms,
    });
    let attrs = [
        ("tos", u32::from(e.tos)),
        ("mark", e.mark),
        ("bound_ifindex", e.bound_ifindex),
        ("flowlabel", e.flowlabel),
        ("priority", e.priority),
        ("txhash", e.txhash),
    ];
    if let Value::Object(m) = &mut v {
        for (k, x) in attrs {
            if x != 0 {
                m.insert(k.into(), json!(x));
            }
        }
    }
    v
}

/// A list of entries as a JSON array.
pub fn entries_json(entries: &[Entry]) -> Value {
    Value::Array(entries.iter().map(entry_json).collect())
}

/// A counter name in snake_case (the spec's names use '-').
pub fn stat_key(name: &str) -> String {
    name.replace('-', "_")
}

/// Counters, one "name value" per line, aligned.
pub fn stats_text(s: &Stats) -> String {
    let rows: Vec<Vec<String>> =
        s.0.iter()
            .map(|(n, v)| vec![stat_key(n), v.to_string()])
            .collect();
    pad_table(&rows)
}

/// Counters as a JSON object (snake_case keys, in the kernel's order).
pub fn stats_json(s: &Stats) -> Value {
    let mut m = serde_json::Map::new();
    for (n, v) in &s.0 {
        m.insert(stat_key(n), json!(v));
    }
    Value::Object(m)
}

/// The report of an add as JSON: counts and one result per entry, with its line when the entry
/// came from a file.
pub fn add_json(
    entries: &[(Option<usize>, Entry)],
    outcomes: &[AddOutcome],
    error: Option<String>,
) -> Value {
    let results: Vec<Value> = entries
        .iter()
        .zip(outcomes)
        .map(|((line, e), o)| {
            let errno = match o {
                AddOutcome::Refused(r) => json!(r),
                _ => Value::Null,
            };
            json!({
                "line": line,
                "local": e.tuple.local.to_string(),
                "remote": e.tuple.remote.to_string(),
                "result": o.word(),
                "errno": errno,
            })
        })
        .collect();
    let taken = outcomes.iter().filter(|o| **o == AddOutcome::Taken).count();
    json!({
        "requested": entries.len(),
        "taken": taken,
        "error": error,
        "results": results,
    })
}

/// A handoff's outcome as JSON.
pub fn handoff_json(o: &Outcome) -> Value {
    match o {
        Outcome::HandedOff(e) => json!({ "outcome": "handed-off", "entry": entry_json(e) }),
        Outcome::PeerFinFirst(t) => json!({
            "outcome": "peer-fin-first",
            "local": t.local.to_string(),
            "remote": t.remote.to_string(),
        }),
        Outcome::DryRun(e) => json!({ "outcome": "dry-run", "entry": entry_json(e) }),
    }
}

/// A handoff's outcome for people.
pub fn handoff_text(o: &Outcome) -> String {
    match o {
        Outcome::HandedOff(e) => format!("handed off: {}\n", format_line(e)),
        Outcome::PeerFinFirst(t) => peer_fin_text(t),
        Outcome::DryRun(e) => format!("would hand off: {}\n", format_line(e)),
    }
}

fn peer_fin_text(t: &Tuple) -> String {
    format!(
        "not handed off: the peer's FIN arrived first; {t} was closed normally and Linux's own \
         TIME_WAIT holds it (no entry left behind)\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Substate, Tuple};

    fn e(l: &str, r: &str, exp: Option<u32>) -> Entry {
        let mut e = Entry::new(
            Tuple::new(l.parse().unwrap(), r.parse().unwrap()).unwrap(),
            1,
            2,
        );
        e.expires_ms = exp;
        e
    }

    #[test]
    fn expires() {
        assert_eq!(format_expires(Some(59_876)), "59.8s");
        assert_eq!(format_expires(Some(0)), "0.0s");
        assert_eq!(format_expires(Some(120_000)), "120.0s");
        assert_eq!(format_expires(None), "-");
    }

    #[test]
    fn table() {
        let mut b = e("[2001:db8::1]:443", "[2001:db8::2]:50000", Some(1_500));
        b.substate = Substate::FinWait2;
        let t = entries_table(
            &[e("10.0.0.1:80", "10.0.0.2:40000", Some(59_800)), b],
            true,
            false,
        );
        let want = "\
State      Recv-Q Send-Q Local Address:Port Peer Address:Port   Expires
TIME-WAIT  0      0      10.0.0.1:80        10.0.0.2:40000      59.8s
FIN-WAIT-2 0      0      [2001:db8::1]:443  [2001:db8::2]:50000 1.5s
";
        assert_eq!(t, want);
        let t = entries_table(&[e("10.0.0.1:80", "10.0.0.2:40000", None)], false, true);
        assert_eq!(
            t,
            "TIME-WAIT 0 0 10.0.0.1:80 10.0.0.2:40000 - snd_nxt=1 rcv_nxt=2 win=0 wscale=0\n"
        );
        assert_eq!(entries_table(&[], false, false), "");
    }

    #[test]
    fn json_entry() {
        let mut x = e("[fe80::1%3]:80", "[fe80::2]:9", Some(10));
        x.has_ts = true;
        x.ts_recent = Some(7);
        let v = entry_json(&x);
        assert_eq!(v["state"], "time-wait");
        assert_eq!(v["family"], "inet6");
        assert_eq!(v["local"], "[fe80::1%3]:80");
        assert_eq!(v["remote_addr"], "fe80::2");
        assert_eq!(v["remote_port"], 9);
        assert_eq!(v["ifindex"], 3);
        assert_eq!(v["ts_recent"], 7);
        assert_eq!(v["expires_ms"], 10);
        let v = entry_json(&e("10.0.0.1:80", "10.0.0.2:1", None));
        assert_eq!(v["ts_recent"], Value::Null);
        assert_eq!(v["expires_ms"], Value::Null);
        assert_eq!(v["family"], "inet");
        assert!(v.get("tos").is_none() && v.get("txhash").is_none());
    }

    #[test]
    fn connection_attributes_only_when_set() {
        let mut x = e("10.0.0.1:80", "10.0.0.2:40000", Some(1000));
        x.substate = Substate::FinWait2;
        x.tos = 0x10;
        x.mark = 0x20;
        x.priority = 3;
        let v = entry_json(&x);
        assert_eq!(
            (v["tos"].clone(), v["mark"].clone()),
            (json!(16), json!(32))
        );
        assert_eq!(v["priority"], 3);
        assert!(v.get("bound_ifindex").is_none() && v.get("flowlabel").is_none());
        assert_eq!(
            entries_table(&[x], false, true),
            "FIN-WAIT-2 0 0 10.0.0.1:80 10.0.0.2:40000 1.0s snd_nxt=1 rcv_nxt=2 win=0 wscale=0 \
             tos=0x10 mark=0x20 priority=3 fw2\n"
        );
    }

    #[test]
    fn stats_output() {
        let s = Stats(vec![("entries".into(), 3), ("refused-nolocal".into(), 12)]);
        assert_eq!(stats_text(&s), "entries         3\nrefused_nolocal 12\n");
        assert_eq!(
            stats_json(&s).to_string(),
            r#"{"entries":3,"refused_nolocal":12}"#
        );
    }

    #[test]
    fn add_report_json() {
        let a = e("10.0.0.1:80", "10.0.0.2:1", None);
        let b = e("10.0.0.1:80", "10.0.0.2:2", None);
        let v = add_json(
            &[(Some(3), a), (None, b)],
            &[AddOutcome::Taken, AddOutcome::Refused(-libc::EEXIST)],
            None,
        );
        assert_eq!(v["requested"], 2);
        assert_eq!(v["taken"], 1);
        assert_eq!(v["results"][0]["line"], 3);
        assert_eq!(v["results"][0]["result"], "taken");
        assert_eq!(v["results"][1]["line"], Value::Null);
        assert_eq!(v["results"][1]["result"], "exists");
        assert_eq!(v["results"][1]["errno"], -libc::EEXIST);
    }

    #[test]
    fn handoff_output() {
        let mut x = e("10.0.0.1:80", "10.0.0.2:1", None);
        x.substate = Substate::FinWait2;
        assert_eq!(
            handoff_json(&Outcome::HandedOff(x))["outcome"],
            "handed-off"
        );
        assert!(handoff_text(&Outcome::HandedOff(x)).ends_with(" fw2\n"));
        let o = Outcome::PeerFinFirst(x.tuple);
        assert_eq!(handoff_json(&o)["outcome"], "peer-fin-first");
        assert!(handoff_text(&o).contains("no entry left behind"));
    }
}
