// SPDX-License-Identifier: GPL-2.0

//! The `twctl` command line: argument definitions (clap) and the commands, all through the
//! library.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::client::{AddOutcome, Client};
use crate::entry::{Entry, Key, Substate, Tuple, AF_INET, AF_INET6, MAX_FLOWLABEL, MAX_WSCALE};
use crate::error::{exit, Error, EXIT_CODES_HELP};
use crate::format;
use crate::handoff::{self, Outcome};
use crate::line::{self, format_line, LineError, FORMAT_HELP};

const ABOUT: &str = "Control the rust_timewait module: compressed TIME_WAIT entries (after \
FreeBSD's tcp_timewait.c) in the current network namespace, over generic netlink.";

const HANDOFF_HELP: &str = "\
HANDOFF PROTOCOL (docs/behaviour.md §6 in the rust_timewait sources)
  1. shutdown(SHUT_WR) after the last write; the kernel sends our FIN.
  2. Once TCP_INFO shows FIN-WAIT-2 (our FIN acknowledged), ask the module to adopt the
     connection by its tuple and bound device (SO_BINDTOIFINDEX, the entry's VRF): under the socket's lock it checks it and reads what Linux's
     TIME_WAIT would keep (snd_nxt, rcv_nxt, window and scale, timestamps, TOS, mark, bound
     device, flow label, priority, transmit hash) into a FIN_WAIT_2 entry (ts_recent is
     learned from the peer's FIN). The socket is not closed by the module.
  3. Enter TCP_REPAIR. Still FIN-WAIT-2: close the socket in repair mode (no FIN, no RST, no
     TIME_WAIT socket). Otherwise the peer's FIN won the race: delete the entry, leave repair
     mode, close normally, exit 5.
  4. Any failure after the adopt deletes the entry again, leaves repair mode and closes
     normally (unread data: the socket is closed as close() closes it, with a reset).
  The module's answers: the peer's FIN came first (EALREADY): closed normally, Linux's
  TIME_WAIT keeps the tuple, exit 5; data not read (ENOTEMPTY), our FIN not acknowledged
  (EINPROGRESS), no such connection in this network namespace (ENOENT), not shut down
  (ENOTCONN), TCP-MD5/TCP-AO, microsecond timestamps or a socket already in repair mode
  (EOPNOTSUPP), already guarded (EEXIST), nolocaltimewait (EADDRNOTAVAIL): exit 1.
  Refused without touching the socket: not TCP, LISTEN, ESTABLISHED without --shutdown,
  FIN-WAIT-1 (unacknowledged data or FIN), CLOSE-WAIT/LAST-ACK/CLOSING/CLOSE.
  --dry-run reads the state itself in repair mode instead (TCP_QUEUE_SEQ, TCP_REPAIR_WINDOW,
  TCP_TIMESTAMP) and needs no module.
  Needs CAP_NET_ADMIN (the module's adopt and TCP_REPAIR).";

/// The command line.
#[derive(Parser, Debug)]
#[command(name = "twctl", version, about = ABOUT, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// JSON output (list, get, stats, flush, add and handoff reports)
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Add entries: one from LOCAL REMOTE and flags, or many from a file (-f), in batches
    #[command(after_help = FORMAT_HELP)]
    Add(AddArgs),
    /// Delete the entry guarding LOCAL REMOTE in the VRF of --bound-ifindex (needs CAP_NET_ADMIN)
    #[command(visible_alias = "delete")]
    Del(TupleArgs),
    /// Show the entry guarding LOCAL REMOTE in the VRF of --bound-ifindex (needs CAP_NET_ADMIN:
    /// entries carry sequence numbers)
    Get(TupleArgs),
    /// List the entries, like `ss -tan state time-wait`, with the remaining lifetime (needs
    /// CAP_NET_ADMIN)
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Delete every entry of this network namespace (needs CAP_NET_ADMIN)
    Flush,
    /// Show the module's counters for this network namespace
    Stats,
    /// Hand a live TCP socket over to the module as a FIN_WAIT_2 entry (needs CAP_NET_ADMIN)
    #[command(after_help = HANDOFF_HELP)]
    Handoff(HandoffArgs),
}

fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

fn endpoint_arg(s: &str) -> Result<SocketAddr, String> {
    line::parse_endpoint(s, &if_index)
}

fn u32_arg(s: &str) -> Result<u32, String> {
    line::parse_u32(s)
}

fn wrapping_u32_arg(s: &str) -> Result<u32, String> {
    line::parse_wrapping_u32(s)
}

fn u16_arg(s: &str) -> Result<u16, String> {
    line::parse_number(s, 65535).map(|v| v as u16)
}

fn wscale_arg(s: &str) -> Result<u8, String> {
    line::parse_number(s, MAX_WSCALE as u64).map(|v| v as u8)
}

fn u8_arg(s: &str) -> Result<u8, String> {
    line::parse_number(s, u8::MAX as u64).map(|v| v as u8)
}

fn flowlabel_arg(s: &str) -> Result<u32, String> {
    line::parse_number(s, MAX_FLOWLABEL as u64).map(|v| v as u32)
}

fn ifindex_arg(s: &str) -> Result<u32, String> {
    if s.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return line::parse_u32(s);
    }
    if_index(s).ok_or_else(|| format!("no interface named '{s}'"))
}

/// `LOCAL REMOTE`.
#[derive(Args, Debug)]
pub struct TupleArgs {
    /// Our end: ADDR:PORT, [IPV6]:PORT, [fe80::1%IFACE]:PORT
    #[arg(value_parser = endpoint_arg)]
    pub local: SocketAddr,
    /// The peer's end, same syntax
    #[arg(value_parser = endpoint_arg)]
    pub remote: SocketAddr,
    /// The device the socket was bound to, index or name: the entry is looked up in its VRF
    /// [default: 0, the default VRF]
    #[arg(long, value_name = "N|IFACE", value_parser = ifindex_arg)]
    pub bound_ifindex: Option<u32>,
}

impl TupleArgs {
    /// The key these arguments name.
    pub fn key(&self) -> Result<Key, String> {
        let (l, r) = (self.local, self.remote);
        let t = Tuple::new(l, r).map_err(|e| format!("'{l} {r}': {e}"))?;
        Ok(Key::new(t, self.bound_ifindex.unwrap_or(0)))
    }
}

/// `twctl add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// Our end: ADDR:PORT, [IPV6]:PORT, [fe80::1%IFACE]:PORT
    #[arg(value_parser = endpoint_arg, required_unless_present = "file", conflicts_with = "file")]
    pub local: Option<SocketAddr>,
    /// The peer's end, same syntax
    #[arg(value_parser = endpoint_arg, required_unless_present = "file")]
    pub remote: Option<SocketAddr>,
    /// Our next sequence number, after our FIN
    #[arg(long, value_name = "N", value_parser = u32_arg, required_unless_present = "file", conflicts_with = "file")]
    pub snd_nxt: Option<u32>,
    /// The next sequence number expected from the peer, after its FIN
    #[arg(long, value_name = "N", value_parser = u32_arg, required_unless_present = "file", conflicts_with = "file")]
    pub rcv_nxt: Option<u32>,
    /// The window we last advertised, as on the wire [default: 0]
    #[arg(long, value_name = "N", value_parser = u16_arg, conflicts_with = "file")]
    pub win: Option<u16>,
    /// Our receive window scale, 0-14 [default: 0]
    #[arg(long, value_name = "N", value_parser = wscale_arg, conflicts_with = "file")]
    pub wscale: Option<u8>,
    /// Last TSval seen from the peer (implies --ts)
    #[arg(long, value_name = "N", value_parser = u32_arg, conflicts_with = "file")]
    pub ts_recent: Option<u32>,
    /// Our TSval clock minus the module's clock in ms, wrapping, may be negative (implies --ts)
    #[arg(long, value_name = "N", value_parser = wrapping_u32_arg, allow_hyphen_values = true, conflicts_with = "file")]
    pub ts_offset: Option<u32>,
    /// The connection uses timestamps
    #[arg(long, conflicts_with = "file")]
    pub ts: bool,
    /// A FIN_WAIT_2 entry (our FIN acknowledged, the peer's not seen yet)
    #[arg(long, conflicts_with = "file")]
    pub fw2: bool,
    /// The connection's IPv4 TOS / IPv6 traffic class, 0-255 [default: 0, none]
    #[arg(long, value_name = "N", value_parser = u8_arg, conflicts_with = "file")]
    pub tos: Option<u8>,
    /// The socket's mark (SO_MARK) for the entry's replies [default: 0, none]
    #[arg(long, value_name = "N", value_parser = u32_arg, conflicts_with = "file")]
    pub mark: Option<u32>,
    /// The device the socket was bound to, index or name [default: 0, any]
    #[arg(long, value_name = "N|IFACE", value_parser = ifindex_arg, conflicts_with = "file")]
    pub bound_ifindex: Option<u32>,
    /// The connection's IPv6 flow label, 0-0xfffff [default: 0, none]
    #[arg(long, value_name = "N", value_parser = flowlabel_arg, conflicts_with = "file")]
    pub flowlabel: Option<u32>,
    /// The socket's priority (SO_PRIORITY) for the entry's replies [default: 0]
    #[arg(long, value_name = "N", value_parser = u32_arg, conflicts_with = "file")]
    pub priority: Option<u32>,
    /// The connection's transmit hash [default: 0, none]
    #[arg(long, value_name = "N", value_parser = u32_arg, conflicts_with = "file")]
    pub txhash: Option<u32>,
    /// Read entries from FILE ('-' for stdin), one per line (format below)
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<String>,
    /// Replace an entry that guards the same tuple instead of refusing it
    #[arg(long)]
    pub replace: bool,
    /// Entries per netlink message
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
}

/// A substate filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    /// TIME_WAIT entries
    #[value(alias = "tw")]
    TimeWait,
    /// FIN_WAIT_2 entries
    #[value(alias = "fw2", alias = "fin-wait-2")]
    FinWait2,
}

/// `twctl list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// IPv4 entries only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 entries only
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Only entries in this state
    #[arg(long, value_enum)]
    pub state: Option<StateFilter>,
    /// Add each entry's fields (snd_nxt, rcv_nxt, window, timestamps)
    #[arg(short = 'e', long)]
    pub extended: bool,
    /// No header line
    #[arg(short = 'H', long)]
    pub no_header: bool,
    /// Print the entries in the add-file format (for 'twctl add -f'; lifetimes are not kept)
    #[arg(long, conflicts_with_all = ["extended", "no_header"])]
    pub lines: bool,
}

/// `twctl handoff`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("socket").required(true).args(["fd", "connect"]))]
pub struct HandoffArgs {
    /// Hand off the TCP socket open on this inherited file descriptor (in FIN-WAIT-2, or
    /// ESTABLISHED with --shutdown)
    #[arg(long, value_name = "N")]
    pub fd: Option<RawFd>,
    /// Shut the socket down for writing and wait for our FIN to be acknowledged first
    #[arg(long, requires = "fd", conflicts_with = "connect")]
    pub shutdown: bool,
    /// Connect to ADDR:PORT, send --send, then close with a handoff (a test driver)
    #[arg(long, value_name = "ADDR:PORT", value_parser = endpoint_arg)]
    pub connect: Option<SocketAddr>,
    /// Text to send after connecting
    #[arg(long, value_name = "TEXT", requires = "connect", conflicts_with = "fd")]
    pub send: Option<String>,
    /// How long to wait for the connection and for our FIN to be acknowledged, in ms
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout: u64,
    /// Only read the socket's state in repair mode (twctl's own reads, not the module's adopt)
    /// and print the entry; add nothing, leave repair mode and close the socket normally (needs
    /// CAP_NET_ADMIN, not the module)
    #[arg(long)]
    pub dry_run: bool,
}

/// Entry point of the binary: parses the arguments, runs, returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    run(cli)
}

fn usage_error(msg: impl std::fmt::Display) -> u8 {
    let mut cmd = Cli::command();
    let _ = cmd
        .error(clap::error::ErrorKind::ValueValidation, msg)
        .print();
    exit::USAGE
}

fn fail(e: &Error) -> u8 {
    eprintln!("twctl: {e}");
    e.exit_code()
}

fn print_warnings(c: &mut Client) {
    for w in c.take_warnings() {
        eprintln!("twctl: warning: kernel says: {w}");
    }
}

fn println_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON of plain values")
    );
}

/// What a command ends with: `Ok` with its exit code once it has run, or `Err` with the exit
/// code of what stopped it early (its message already on stderr).
type Exit = Result<u8, u8>;

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    let json = cli.json;
    let exit: Exit = match cli.command {
        Command::Add(a) => cmd_add(a, json),
        Command::Del(t) => cmd_del(t),
        Command::Get(t) => cmd_get(t, json),
        Command::List(l) => cmd_list(l, json),
        Command::Flush => cmd_flush(json),
        Command::Stats => cmd_stats(json),
        Command::Handoff(h) => Ok(cmd_handoff(h, json)),
    };
    exit.unwrap_or_else(|code| code)
}

/// The prologue and epilogue of every request: opens the family (a failure ends the command
/// with its message and exit code), runs `op`, then prints the warnings the kernel attached
/// to its ACKs, whatever `op` returned.
fn with_client<T>(op: impl FnOnce(&mut Client) -> T) -> Result<T, u8> {
    let mut client = Client::open().map_err(|e| fail(&e))?;
    let r = op(&mut client);
    print_warnings(&mut client);
    Ok(r)
}

/// A request whose error ends the command with the error's message and exit code.
fn request<T>(op: impl FnOnce(&mut Client) -> Result<T, Error>) -> Result<T, u8> {
    with_client(op)?.map_err(|e| fail(&e))
}

/// A request about the entry guarding `LOCAL REMOTE` (`del`, `get`): a tuple that cannot be
/// an entry's is a usage error, nothing sent; no such entry is said as such (exit 1).
fn tuple_request<T>(
    name: &str,
    args: TupleArgs,
    op: impl FnOnce(&mut Client, Key) -> Result<T, Error>,
) -> Result<T, u8> {
    let k = args.key().map_err(usage_error)?;
    with_client(|c| op(c, k))?.map_err(|e| not_found(name, &k, &e).unwrap_or_else(|| fail(&e)))
}

/// The entry of `twctl add LOCAL REMOTE --snd-nxt ...`.
pub fn entry_from_flags(a: &AddArgs) -> Result<Entry, String> {
    let (Some(l), Some(r), Some(snd), Some(rcv)) = (a.local, a.remote, a.snd_nxt, a.rcv_nxt) else {
        return Err("LOCAL REMOTE --snd-nxt N --rcv-nxt N are needed without --file".into());
    };
    let t = Tuple::new(l, r).map_err(|e| format!("'{l} {r}': {e}"))?;
    let mut e = Entry::new(t, snd, rcv);
    e.last_win = a.win.unwrap_or(0);
    e.rcv_wscale = a.wscale.unwrap_or(0);
    e.has_ts = a.ts || a.ts_recent.is_some() || a.ts_offset.is_some();
    e.ts_recent = a.ts_recent;
    e.ts_offset = a.ts_offset.unwrap_or(0);
    e.substate = if a.fw2 {
        Substate::FinWait2
    } else {
        Substate::TimeWait
    };
    e.tos = a.tos.unwrap_or(0);
    e.mark = a.mark.unwrap_or(0);
    e.bound_ifindex = a.bound_ifindex.unwrap_or(0);
    e.flowlabel = a.flowlabel.unwrap_or(0);
    e.priority = a.priority.unwrap_or(0);
    e.txhash = a.txhash.unwrap_or(0);
    line::check_timestamps(&e)?;
    Ok(e)
}

fn read_entries(path: &str) -> Result<Vec<(usize, Entry)>, Vec<LineError>> {
    let max = 20;
    if path == "-" {
        line::parse_entries(io::stdin().lock(), &if_index, max)
    } else {
        match File::open(path) {
            Ok(f) => line::parse_entries(BufReader::new(f), &if_index, max),
            Err(e) => Err(vec![LineError {
                line: 0,
                msg: format!("cannot open: {e}"),
            }]),
        }
    }
}

fn cmd_add(a: AddArgs, json: bool) -> Exit {
    // Every entry is checked before anything is sent.
    let (source, entries): (String, Vec<(Option<usize>, Entry)>) = match &a.file {
        Some(path) => {
            let name = if path == "-" {
                "<stdin>".to_string()
            } else {
                path.clone()
            };
            match read_entries(path) {
                Ok(v) => (name, v.into_iter().map(|(n, e)| (Some(n), e)).collect()),
                Err(errs) => {
                    for e in &errs {
                        if e.line == 0 {
                            eprintln!("twctl: {name}: {}", e.msg);
                        } else {
                            eprintln!("twctl: {name}:{}: {}", e.line, e.msg);
                        }
                    }
                    eprintln!("twctl: nothing was sent");
                    return Err(exit::USAGE);
                }
            }
        }
        None => match entry_from_flags(&a) {
            Ok(e) => (String::new(), vec![(None, e)]),
            Err(m) => return Err(usage_error(m)),
        },
    };
    let place = |i: usize| -> String {
        match entries.get(i).and_then(|(l, _)| *l) {
            Some(l) => format!("{source}:{l}"),
            None => "add".to_string(),
        }
    };
    if entries.is_empty() {
        if json {
            println_json(&format::add_json(&[], &[], None));
        }
        return Ok(exit::OK);
    }
    let plain: Vec<Entry> = entries.iter().map(|(_, e)| *e).collect();
    let report = with_client(|c| c.add_batched(&plain, a.replace, a.batch as usize))?;

    let mut code = exit::OK;
    let mut error_text = None;
    if let Some((start, err)) = &report.error {
        let text = match err.refusal() {
            Some(r) => {
                let d = r.details(&|i| place(start + i));
                let head = match err {
                    Error::PermissionDenied { .. } => err.to_string(),
                    _ => format!("add: {}", r.strerror()),
                };
                if d.is_empty() || matches!(err, Error::PermissionDenied { .. }) {
                    head
                } else {
                    format!("{head}: {d}")
                }
            }
            None => err.to_string(),
        };
        eprintln!("twctl: {text}");
        error_text = Some(text);
        code = err.exit_code();
    }
    for (i, o) in report.outcomes.iter().enumerate() {
        if let AddOutcome::Refused(_) = o {
            eprintln!(
                "twctl: {}: {}: {}",
                place(i),
                entries[i].1.tuple,
                o.describe()
            );
            if code == exit::OK {
                code = exit::FAILED;
            }
        }
    }
    if !report.all_taken() && plain.len() > 1 {
        let batch_refused = report
            .outcomes
            .iter()
            .filter(|o| **o == AddOutcome::BatchRefused)
            .count();
        let not_sent = report
            .outcomes
            .iter()
            .filter(|o| **o == AddOutcome::NotSent)
            .count();
        let mut s = format!("twctl: {} of {} entries taken", report.taken(), plain.len());
        if batch_refused > 0 {
            s.push_str(&format!(", {batch_refused} refused with their batch"));
        }
        if not_sent > 0 {
            s.push_str(&format!(", {not_sent} not sent"));
        }
        eprintln!("{s}");
    }
    if json {
        println_json(&format::add_json(&entries, &report.outcomes, error_text));
    }
    Ok(code)
}

/// What `twctl del/get` says when no entry guards the key.
pub fn not_found_text(op: &str, k: &Key, msg: Option<&str>) -> String {
    let mut s = format!("{op}: no entry guards {k}");
    if let Some(m) = msg {
        s.push_str(&format!(" ({m})"));
    }
    if k.bound_ifindex == 0 {
        s.push_str(
            "; an entry of a socket bound to a device or VRF is found with its --bound-ifindex",
        );
    }
    s
}

fn not_found(op: &str, k: &Key, e: &Error) -> Option<u8> {
    if e.errno() == Some(libc::ENOENT) && matches!(e, Error::Refused { .. }) {
        let msg = e.refusal().and_then(|r| r.msg.clone());
        eprintln!("twctl: {}", not_found_text(op, k, msg.as_deref()));
        return Some(exit::FAILED);
    }
    None
}

fn cmd_del(t: TupleArgs) -> Exit {
    tuple_request("del", t, |c, k| c.del(k))?;
    Ok(exit::OK)
}

fn cmd_get(t: TupleArgs, json: bool) -> Exit {
    let e = tuple_request("get", t, |c, k| c.get(k))?;
    if json {
        println_json(&format::entry_json(&e));
    } else {
        print!("{}", format::entries_table(&[e], true, true));
    }
    Ok(exit::OK)
}

/// The filter of `twctl list`.
pub fn list_filter(l: &ListArgs, e: &Entry) -> bool {
    (!l.ipv4 || e.tuple.family() == AF_INET)
        && (!l.ipv6 || e.tuple.family() == AF_INET6)
        && match l.state {
            None => true,
            Some(StateFilter::TimeWait) => e.substate == Substate::TimeWait,
            Some(StateFilter::FinWait2) => e.substate == Substate::FinWait2,
        }
}

fn cmd_list(l: ListArgs, json: bool) -> Exit {
    let entries: Vec<Entry> = request(Client::list)?
        .into_iter()
        .filter(|e| list_filter(&l, e))
        .collect();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let res = if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&format::entries_json(&entries)).unwrap()
        )
    } else if l.lines {
        entries
            .iter()
            .try_for_each(|e| writeln!(out, "{}", format_line(e)))
    } else {
        write!(
            out,
            "{}",
            format::entries_table(&entries, !l.no_header, l.extended)
        )
    };
    match res {
        Ok(()) => Ok(exit::OK),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(exit::OK),
        Err(e) => {
            eprintln!("twctl: stdout: {e}");
            Ok(exit::FAILED)
        }
    }
}

fn cmd_flush(json: bool) -> Exit {
    let n = request(Client::flush)?;
    if json {
        println_json(&serde_json::json!({ "flushed": n }));
    } else {
        println!("flushed {n} entries");
    }
    Ok(exit::OK)
}

fn cmd_stats(json: bool) -> Exit {
    let s = request(Client::stats)?;
    if json {
        println_json(&format::stats_json(&s));
    } else {
        print!("{}", format::stats_text(&s));
    }
    Ok(exit::OK)
}

fn cmd_handoff(h: HandoffArgs, json: bool) -> u8 {
    let timeout = Duration::from_millis(h.timeout);
    let result = if let Some(fd) = h.fd {
        // SAFETY: F_GETFD only checks that the descriptor is open.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            eprintln!("twctl: handoff: file descriptor {fd} is not open");
            return exit::USAGE;
        }
        // SAFETY: the descriptor is open and this process owns it from here on (it was
        // inherited for this purpose); nothing else in twctl uses it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        if h.dry_run {
            handoff::dry_run(owned, h.shutdown, timeout)
        } else if h.shutdown {
            handoff::close_with_handoff(owned, timeout)
        } else {
            handoff::handoff(owned)
        }
    } else {
        let addr = h.connect.expect("clap requires --fd or --connect");
        let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("twctl: handoff: connect to {addr}: {e}");
                return exit::FAILED;
            }
        };
        if let Some(text) = &h.send {
            if let Err(e) = stream.write_all(text.as_bytes()) {
                eprintln!("twctl: handoff: send: {e}");
                return exit::FAILED;
            }
        }
        if h.dry_run {
            handoff::dry_run(stream.into(), true, timeout)
        } else {
            handoff::close_with_handoff(stream.into(), timeout)
        }
    };
    match result {
        Ok(o) => {
            if json {
                println_json(&format::handoff_json(&o));
            } else if let Outcome::PeerFinFirst(_) = o {
                eprint!("twctl: {}", format::handoff_text(&o));
            } else {
                print!("{}", format::handoff_text(&o));
            }
            match o {
                Outcome::HandedOff(_) | Outcome::DryRun(_) => exit::OK,
                Outcome::PeerFinFirst(_) => exit::NOT_HANDED_OFF,
            }
        }
        Err(e) => {
            eprintln!("twctl: handoff: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("twctl").chain(args.iter().copied()))
    }

    /// A command line written as one string, split at white space.
    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    /// The arguments of an `add` command line that parses.
    fn add_args(args: &[&str]) -> AddArgs {
        match parse(args).unwrap().command {
            Command::Add(a) => a,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn add_from_flags() {
        let a = add_args(&[
            "add",
            "10.0.0.1:80",
            "10.0.0.2:40000",
            "--snd-nxt",
            "0x10",
            "--rcv-nxt",
            "20",
            "--win",
            "502",
            "--wscale",
            "7",
            "--ts-offset",
            "-5",
            "--fw2",
            "--replace",
        ]);
        assert!(a.replace);
        let e = entry_from_flags(&a).unwrap();
        assert_eq!(
            (e.snd_nxt, e.rcv_nxt, e.last_win, e.rcv_wscale),
            (16, 20, 502, 7)
        );
        assert!(e.has_ts);
        assert_eq!(e.ts_offset, (-5i32) as u32);
        assert_eq!(e.ts_recent, None);
        assert_eq!(e.substate, Substate::FinWait2);
        assert_eq!(a.batch, 256);
        assert_eq!(
            (
                e.tos,
                e.mark,
                e.bound_ifindex,
                e.flowlabel,
                e.priority,
                e.txhash
            ),
            (0, 0, 0, 0, 0, 0)
        );
        let a = add_args(&words(
            "add [2001:db8::1]:80 [2001:db8::2]:1 --snd-nxt 1 --rcv-nxt 2 --tos 0xb8 --mark 7 \
             --bound-ifindex 3 --flowlabel 0xfffff --priority 6 --txhash 0xdeadbeef",
        ));
        let e = entry_from_flags(&a).unwrap();
        assert_eq!(
            (
                e.tos,
                e.mark,
                e.bound_ifindex,
                e.flowlabel,
                e.priority,
                e.txhash
            ),
            (0xb8, 7, 3, 0xfffff, 6, 0xdead_beef)
        );
    }

    /// The arguments of a `del` or `get` command line that parses.
    fn tuple_args(args: &[&str]) -> TupleArgs {
        match parse(args).unwrap().command {
            Command::Del(t) | Command::Get(t) => t,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn del_and_get_take_a_bound_ifindex() {
        let t = Tuple::new(
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:40000".parse().unwrap(),
        )
        .unwrap();
        for cmd in ["del", "delete", "get"] {
            let a = tuple_args(&words(&format!("{cmd} 10.0.0.1:80 10.0.0.2:40000")));
            assert_eq!(a.bound_ifindex, None);
            assert_eq!(a.key().unwrap(), Key::new(t, 0));
            let a = tuple_args(&words(&format!(
                "{cmd} 10.0.0.1:80 10.0.0.2:40000 --bound-ifindex 12"
            )));
            assert_eq!(a.key().unwrap(), Key::new(t, 12));
            // Before the tuple, in hex, and by name (lo is there on every host).
            let a = tuple_args(&words(&format!(
                "{cmd} --bound-ifindex 0x10 10.0.0.1:80 10.0.0.2:40000"
            )));
            assert_eq!(a.key().unwrap(), Key::new(t, 16));
            let a = tuple_args(&words(&format!(
                "{cmd} 10.0.0.1:80 10.0.0.2:40000 --bound-ifindex lo"
            )));
            assert_eq!(a.bound_ifindex, if_index("lo"));
            assert!(a.bound_ifindex.is_some_and(|i| i > 0));
        }
        // A link-local tuple keeps its scope next to the device.
        let a = tuple_args(&words("get [fe80::1%3]:80 [fe80::2]:1 --bound-ifindex 4"));
        let k = a.key().unwrap();
        assert_eq!((k.tuple.ifindex(), k.bound_ifindex), (3, 4));
        // A tuple that does not hold is refused before anything is sent.
        let a = tuple_args(&words("del 10.0.0.1:80 [::1]:1 --bound-ifindex 4"));
        assert!(a.key().unwrap_err().contains("different families"));
    }

    #[test]
    fn not_found_names_the_key() {
        let t = Tuple::new(
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:1".parse().unwrap(),
        )
        .unwrap();
        let s = not_found_text("del", &Key::new(t, 5), Some("no entry guards this tuple"));
        assert_eq!(
            s,
            "del: no entry guards 10.0.0.1:80 10.0.0.2:1 bound-ifindex 5 \
             (no entry guards this tuple)"
        );
        let s = not_found_text("get", &Key::from(t), None);
        assert!(
            s.starts_with("get: no entry guards 10.0.0.1:80 10.0.0.2:1; "),
            "{s}"
        );
        assert!(s.contains("--bound-ifindex"), "{s}");
    }

    #[test]
    fn add_usage_errors_are_exit_2() {
        let cases = [
            "add 10.0.0.1:80 10.0.0.2:1",                             // no seqs
            "add 10.0.0.1:80 10.0.0.2:70000 --snd-nxt 1 --rcv-nxt 2", // port
            "add 10.0.0.1:80 10.0.0.2:1 --snd-nxt x --rcv-nxt 2",
            "add 10.0.0.1:80 10.0.0.2:1 --snd-nxt 1 --rcv-nxt 2 --wscale 15",
            "add 10.0.0.1:80 10.0.0.2:1 --snd-nxt 1 --rcv-nxt 2 --win 65536",
            "add 10.0.0.1:80 10.0.0.2:1 --snd-nxt 1 --rcv-nxt 2 --tos 256",
            "add 10.0.0.1:80 10.0.0.2:1 --snd-nxt 1 --rcv-nxt 2 --flowlabel 0x100000",
            "add 10.0.0.1:80 10.0.0.2:1 --snd-nxt 1 --rcv-nxt 2 --bound-ifindex nosuchif0",
            "add -f x --mark 1",
            "add -f x --snd-nxt 1",
            "add -f x 10.0.0.1:80",
            "add -f x --batch 0",
            "add host:80 10.0.0.2:1 --snd-nxt 1 --rcv-nxt 2",
            "del 10.0.0.1:80 10.0.0.2:1 --bound-ifindex nosuchif0",
            "get 10.0.0.1:80 10.0.0.2:1 --bound-ifindex -1",
            "get 10.0.0.1:80 10.0.0.2:1 --bound-ifindex 0x100000000",
            "get 10.0.0.1:80 10.0.0.2:1 --bound-ifindex",
            "frobnicate",
        ];
        for args in cases.map(words) {
            let err = parse(&args).expect_err(&format!("{args:?}"));
            assert!(err.use_stderr(), "{args:?}");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn error_texts_name_the_problem() {
        let err = parse(&words(
            "add 10.0.0.1:80 10.0.0.2:70000 --snd-nxt 1 --rcv-nxt 2",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("out of range (1-65535)"), "{err}");
        let err = parse(&["del", "[fe80::1%nosuchif0]:80", "[fe80::2]:1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no interface named 'nosuchif0'"), "{err}");
    }

    #[test]
    fn mixed_families_from_flags() {
        let a = add_args(&words("add 10.0.0.1:80 [::1]:1 --snd-nxt 1 --rcv-nxt 2"));
        assert!(entry_from_flags(&a)
            .unwrap_err()
            .contains("different families"));
        let a = add_args(&words(
            "add 10.0.0.1:80 10.0.0.2:1 --snd-nxt 1 --rcv-nxt 2 --ts",
        ));
        assert!(entry_from_flags(&a)
            .unwrap_err()
            .contains("needs ts_recent"));
    }

    #[test]
    fn add_from_file_args() {
        let cli = parse(&["-j", "add", "-f", "-", "--replace", "--batch", "100"]).unwrap();
        assert!(cli.json);
        let Command::Add(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.file.as_deref(), Some("-"));
        assert_eq!(a.batch, 100);
    }

    #[test]
    fn list_args_and_filter() {
        let cli = parse(&["ls", "-6", "--state", "fw2", "-e", "--json"]).unwrap();
        assert!(cli.json);
        let Command::List(l) = cli.command else {
            panic!()
        };
        let t4 = Tuple::new(
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:1".parse().unwrap(),
        )
        .unwrap();
        let t6 = Tuple::new("[::1]:80".parse().unwrap(), "[::2]:1".parse().unwrap()).unwrap();
        let mut e6 = Entry::new(t6, 1, 2);
        e6.substate = Substate::FinWait2;
        assert!(list_filter(&l, &e6));
        assert!(!list_filter(&l, &Entry::new(t6, 1, 2)));
        let mut e4 = Entry::new(t4, 1, 2);
        e4.substate = Substate::FinWait2;
        assert!(!list_filter(&l, &e4));
        assert!(parse(&["list", "-4", "-6"]).is_err());
        assert!(parse(&["list", "--lines", "-e"]).is_err());
        assert!(parse(&["list", "--state", "time-wait"]).is_ok());
        assert!(parse(&["list", "--state", "closing"]).is_err());
    }

    #[test]
    fn handoff_args() {
        assert_eq!(
            parse(&["handoff"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert!(parse(&["handoff", "--fd", "3", "--connect", "10.0.0.1:80"]).is_err());
        assert!(parse(&["handoff", "--shutdown", "--connect", "10.0.0.1:80"]).is_err());
        assert!(parse(&["handoff", "--send", "x", "--fd", "3"]).is_err());
        let cli = parse(&["handoff", "--fd", "3", "--shutdown", "--timeout", "100"]).unwrap();
        let Command::Handoff(h) = cli.command else {
            panic!()
        };
        assert_eq!((h.fd, h.shutdown, h.timeout), (Some(3), true, 100));
    }

    #[test]
    fn help_documents_exit_codes_format_and_handoff() {
        let mut cmd = Cli::command();
        let top = cmd.render_long_help().to_string();
        assert!(top.contains("EXIT CODES"));
        assert!(top.contains("3  the rust_timewait module is not loaded"));
        let mut help_of = |name: &str| {
            let sub = cmd.find_subcommand_mut(name).unwrap();
            sub.render_long_help().to_string()
        };
        let add = help_of("add");
        assert!(add.contains("ENTRY FILE FORMAT"));
        assert!(add.contains("snd_nxt=N"));
        assert!(add.contains("flowlabel=N"));
        let h = help_of("handoff");
        assert!(h.contains("TCP_REPAIR"));
        assert!(h.contains("adopt"));
        assert!(h.contains("CAP_NET_ADMIN"));
    }
}
