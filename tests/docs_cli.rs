//! The docs match the binary (issue 10, item 6; issue 15, item 15): README.md's usage lines
//! list every flag that each subcommand's `--help` shows, and no flag it lacks; the
//! `--max-datagram` default is stated as the binary has it; the summary, stats and JSON
//! lines in the docs have the fields of a real server's; every subcommand's `--help` lists
//! its exit codes and the docs' exit-code tables copy them; both `--stamp-key-file`s state
//! one key-file rule, the one docs/STAMP.md states; GUIDE's troubleshooting says what a
//! second server on a served port really meets; `shout man` makes a page per command
//! (issue 15, item 16) with every option of its `--help` and an EXIT STATUS of its exit codes.
//!
//! Everything is read from the real binary and compared generically, so a new counter, exit
//! code or subcommand only needs its docs.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::common::{shout, Scratch, ServerProc, BIN};

/// Upper bound for any one command or server line here.
const WAIT: Duration = Duration::from_secs(10);

fn read(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

fn help(subcommand: &str) -> String {
    let out = Command::new(BIN).args([subcommand, "--help"]).output().expect("running shout");
    assert!(out.status.success(), "shout {subcommand} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// `--long-name` tokens in `text`.
fn flags_in(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for (i, _) in text.match_indices("--") {
        let name: String =
            text[i + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let before = text[..i].chars().next_back();
        if !name.is_empty() && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-') {
            flags.insert(format!("--{name}"));
        }
    }
    flags
}

/// The flags `--help` lists as options (the first column), without --help itself.
fn help_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| {
            let column = line.split("  ").next().unwrap_or(line);
            flags_in(column).into_iter().next()
        })
        .filter(|flag| flag != "--help" && flag != "--version")
        .collect()
}

/// The first code block after README's `## `shout SUB`` heading: its usage lines.
fn readme_usage(readme: &str, subcommand: &str) -> String {
    let heading = format!("## `shout {subcommand}`");
    let section = readme
        .split_once(&heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?} section"))
        .1;
    let block = section.split_once("```").expect("a usage block after the heading").1;
    let usage = block.split_once("```").expect("the usage block is closed").0;
    assert!(usage.contains(&format!("shout {subcommand}")), "{heading}: {usage}");
    usage.to_string()
}

#[test]
fn readme_usage_lines_list_every_flag_of_help() {
    let readme = read("README.md");
    for subcommand in ["server", "client", "bench", "probe"] {
        let shown = help_flags(&help(subcommand));
        assert!(shown.len() >= 6, "{subcommand}: too few flags parsed from --help: {shown:?}");
        let documented = flags_in(&readme_usage(&readme, subcommand));
        let missing: Vec<_> = shown.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&shown).collect();
        assert!(missing.is_empty(), "README's `shout {subcommand}` usage lacks {missing:?}");
        assert!(stale.is_empty(), "README's `shout {subcommand}` usage has unknown {stale:?}");
    }
}

#[test]
fn max_datagram_default_is_stated_as_the_binary_has_it() {
    let help = help("server");
    // The flag's entry: its line and, in the long layout, the text under it.
    let line: String = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--max-datagram"))
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(!line.is_empty(), "--max-datagram in shout server --help");
    let default: usize = line
        .split_once("[default: ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no default in {line:?}"));
    // The binary really takes it: the largest value is accepted, one more is not.
    let accepts = |n: usize| {
        Command::new(BIN)
            .args(["server", "--max-datagram", &n.to_string(), "--help"])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(accepts(default));
    let over = Command::new(BIN)
        .args(["server", "--bind", "127.0.0.1:0", "--max-datagram", &(default + 1).to_string()])
        .output()
        .unwrap();
    assert_eq!(over.status.code(), Some(2), "a --max-datagram above the default is refused");
    let shown = format!("{},{:03}", default / 1000, default % 1000);
    for doc in ["README.md", "docs/SECURITY.md"] {
        assert!(
            read(doc).contains(&format!("default, {shown},")),
            "{doc} must state the --max-datagram default as {shown}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Summary, stats and JSON lines

/// The docs that show a server's lines.
const DOCS: [&str; 5] =
    ["README.md", "docs/GUIDE.md", "docs/STAMP.md", "docs/SECURITY.md", "docs/BENCHMARKS.md"];

/// The `key=value` keys of a line, in order.
fn kv_keys(line: &str) -> Vec<String> {
    line.split_whitespace().filter_map(|f| f.split_once('=')).map(|(k, _)| k.into()).collect()
}

/// The keys of a one-line JSON object (sorted: serde_json keeps no order).
fn json_keys(line: &str) -> BTreeSet<String> {
    let value: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
    value.as_object().unwrap_or_else(|| panic!("not an object: {line}")).keys().cloned().collect()
}

/// A real server's stats line (asked for with SIGUSR1) and summary line, with `extra` flags.
fn real_lines(extra: &[&str]) -> (String, String) {
    let mut args = vec!["--bind", "127.0.0.1:0", "--quiet", "--workers", "1"];
    args.extend_from_slice(extra);
    let mut server = ServerProc::spawn(&args);
    server.signal("USR1");
    let stats = server
        .wait_stderr(WAIT, |l| l.contains("stats"))
        .unwrap_or_else(|| panic!("no stats line after SIGUSR1: {:?}", server.stderr_seen()));
    let stopped = server.stop("TERM");
    assert!(stopped.status.success(), "{}", stopped.stderr_text());
    let summary = stopped.stderr.iter().find(|l| l.contains("summary")).cloned();
    (stats, summary.unwrap_or_else(|| panic!("no summary: {}", stopped.stderr_text())))
}

/// `(doc, line)` for every line of the docs that `pick` selects, trimmed.
fn doc_lines(pick: impl Fn(&str) -> bool) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for doc in DOCS {
        for line in read(doc).lines().map(str::trim).filter(|l| pick(l)) {
            found.push((doc, line.to_string()));
        }
    }
    found
}

#[test]
fn summary_and_stats_lines_in_the_docs_have_the_real_fields() {
    let (stats, summary) = real_lines(&[]);
    let (stats, summary) = (kv_keys(&stats), kv_keys(&summary));
    assert!(summary.len() >= 10 && summary[0] == "received", "parsed {summary:?}");
    let shown = doc_lines(|l| l.starts_with("summary: "));
    for doc in ["README.md", "docs/GUIDE.md"] {
        assert!(shown.iter().any(|(d, _)| *d == doc), "{doc} shows no summary line");
    }
    for (doc, line) in &shown {
        assert_eq!(&kv_keys(line), &summary, "{doc}'s summary line has other fields:\n{line}");
    }
    // A stats line may leave fields out with `...`, in the binary's order.
    for (doc, line) in doc_lines(|l| l.starts_with("stats: ")) {
        let keys = kv_keys(&line);
        if line.contains("...") {
            let mut real = stats.iter();
            let in_order = keys.iter().all(|k| real.any(|r| r == k));
            assert!(in_order, "{doc}'s stats line has fields the binary lacks:\n{line}");
        } else {
            assert_eq!(keys, stats, "{doc}'s stats line has other fields:\n{line}");
        }
    }
}

#[test]
fn json_summary_and_stats_lines_in_the_docs_have_the_real_fields() {
    let (stats, summary) = real_lines(&["--log-format", "json"]);
    let (stats, summary) = (json_keys(&stats), json_keys(&summary));
    assert!(summary.contains("kernel_drops"), "parsed {summary:?}");
    let shown = doc_lines(|l| l.starts_with('{') && l.contains(r#""event":"summary""#));
    assert!(!shown.is_empty(), "the docs show no JSON summary line");
    for (doc, line) in shown {
        assert_eq!(json_keys(&line), summary, "{doc}'s JSON summary has other fields:\n{line}");
    }
    for (doc, line) in doc_lines(|l| l.starts_with('{') && l.contains(r#""event":"stats""#)) {
        assert_eq!(json_keys(&line), stats, "{doc}'s JSON stats line has other fields:\n{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Exit codes

/// The subcommands `shout --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let top = help_of(&["--help"]);
    let list = top.split_once("Commands:").expect("shout --help lists its commands").1;
    let names: Vec<String> = list
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect();
    assert!(names.len() >= 5, "parsed {names:?} from shout --help");
    names
}

/// `shout ARGS` (a help request): its stdout.
fn help_of(args: &[&str]) -> String {
    let out = shout(args, WAIT);
    assert_eq!(out.code(), Some(0), "shout {args:?}: {out}");
    out.stdout
}

/// Whitespace collapsed, backticks dropped: a table cell and a help line compare equal.
fn plain(text: &str) -> String {
    text.replace('`', "").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `Exit codes` block of a help text: (code, meaning) in order, a meaning's wrapped
/// lines joined.
fn help_exit_codes(help: &str) -> Vec<(u8, String)> {
    let Some((_, block)) = help.split_once("\nExit codes") else { return Vec::new() };
    let mut codes: Vec<(u8, String)> = Vec::new();
    for line in block.lines().skip(1).take_while(|l| l.starts_with(' ')) {
        let mut words = line.split_whitespace();
        match words.next().map(str::parse::<u8>) {
            Some(Ok(code)) => {
                codes.push((code, plain(&words.collect::<Vec<_>>().join(" "))));
            }
            _ => {
                let last = codes.last_mut().expect("an exit code before its continuation");
                last.1 = plain(&format!("{} {line}", last.1));
            }
        }
    }
    codes
}

/// Every exit-code table of a doc: the subcommand named in the line before it
/// (`Exit codes of `shout SUB`:`) and its rows.
fn doc_exit_tables(doc: &str) -> Vec<(String, Vec<(u8, String)>)> {
    let text = read(doc);
    let mut tables = Vec::new();
    for (i, _) in text.match_indices("Exit codes of `shout ") {
        let rest = &text[i + "Exit codes of `shout ".len()..];
        let sub = rest.split('`').next().unwrap_or_default().to_string();
        let rows = rest
            .lines()
            .skip(1)
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.trim().trim_matches('|').split(" | ").collect();
                let code = cells.first()?.trim().parse().ok()?;
                Some((code, plain(&cells[1..].join(" | "))))
            })
            .collect();
        tables.push((sub, rows));
    }
    tables
}

#[test]
fn every_help_lists_exit_codes_and_the_docs_tables_copy_them() {
    let top = help_exit_codes(&help_of(&["--help"]));
    assert!(top.iter().any(|(c, _)| *c == 2), "shout --help lists exit codes: {top:?}");
    let mut codes = std::collections::BTreeMap::new();
    for sub in subcommands() {
        let listed = help_exit_codes(&help_of(&[&sub, "--help"]));
        let numbers: Vec<u8> = listed.iter().map(|(c, _)| *c).collect();
        assert!(
            numbers.starts_with(&[0]) && numbers.contains(&2),
            "shout {sub} --help lists no exit codes (0, ..., 2 usage): {listed:?}"
        );
        codes.insert(sub, listed);
    }
    // Each subcommand with a README section has its table there.
    let readme = read("README.md");
    let tables = doc_exit_tables("README.md");
    for sub in codes.keys() {
        if readme.contains(&format!("## `shout {sub}`")) {
            assert!(
                tables.iter().any(|(s, _)| s == sub),
                "README's `shout {sub}` section has no \"Exit codes of `shout {sub}`:\" table"
            );
        }
    }
    for doc in ["README.md", "docs/GUIDE.md"] {
        for (sub, rows) in doc_exit_tables(doc) {
            let help = codes.get(&sub).unwrap_or_else(|| panic!("{doc}: no subcommand {sub:?}"));
            assert_eq!(&rows, help, "{doc}'s exit codes of `shout {sub}` differ from its --help");
        }
    }
    // A page about one subcommand may explain its codes at more length, but not other codes.
    let (doc, sub) = ("docs/BENCH-JSON.md", "bench");
    let text = read(doc);
    let table = text.split_once("| exit | meaning |").expect("an exit-code table").1;
    let listed: Vec<u8> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.trim_matches('|').split('|').next()?.trim().parse().ok())
        .collect();
    let help: Vec<u8> = codes[sub].iter().map(|(c, _)| *c).collect();
    assert_eq!(listed, help, "{doc}'s exit codes differ from shout {sub} --help's");
}

// ---------------------------------------------------------------------------------------------
// The key-file rule

/// A flag's help text in a `--help` (the long layout's lines under it, or the short one's
/// rest of line), whitespace collapsed.
fn flag_help(help: &str, flag: &str) -> String {
    let mut lines = help.lines().skip_while(|l| !l.trim_start().starts_with(flag));
    let first = lines.next().unwrap_or_else(|| panic!("no {flag} in:\n{help}"));
    let rest_of_line = first.trim_start().split_once("  ").map_or("", |(_, rest)| rest);
    let under: Vec<&str> = lines.take_while(|l| !l.trim().is_empty()).collect();
    plain(&format!("{rest_of_line} {}", under.join(" ")))
}

#[test]
fn both_key_file_flags_state_the_rule_stamp_md_states() {
    let server = flag_help(&help_of(&["server", "--help"]), "--stamp-key-file");
    let bench = flag_help(&help_of(&["bench", "--help"]), "--stamp-key-file");
    assert_eq!(server, bench, "server's and bench's --stamp-key-file describe the key differently");
    // The rule is the library's, word for word (shout::stamp::key::KEY_FILE_RULE).
    let rule = plain(shout::stamp::key::KEY_FILE_RULE);
    assert!(server.contains(rule.trim_end_matches('.')), "no key-file rule in: {server}");
    assert!(
        plain(&read("docs/STAMP.md")).contains(&rule),
        "docs/STAMP.md does not state --help's key-file rule word for word: {rule}"
    );
}

// ---------------------------------------------------------------------------------------------
// A second server on a served port

#[test]
fn a_second_server_on_a_served_port_is_refused_as_the_guide_says() {
    let first = ServerProc::spawn(&["--bind", "127.0.0.1:0", "--quiet", "--workers", "2"]);
    let addr = first.addr().to_string();
    let mut refusals = Vec::new();
    for workers in ["1", "2"] {
        let out = shout(&["server", "--bind", &addr, "--quiet", "--workers", workers], WAIT);
        assert_eq!(out.code(), Some(1), "a second server (--workers {workers}) is refused: {out}");
        assert!(out.stdout.is_empty(), "a refused server prints no `listening on`: {out}");
        refusals.push(out.stderr.trim().replace(&addr, "127.0.0.1:8080"));
    }
    let reply = shout(&["client", &addr, "still"], WAIT);
    assert_eq!(reply.stdout.trim(), "STILL", "the first server still answers: {reply}");
    drop(first);
    // GUIDE quotes the refusal, and every paragraph about a second server says it is refused.
    let guide = read("docs/GUIDE.md");
    for refusal in &refusals {
        assert!(plain(&guide).contains(&plain(refusal)), "GUIDE does not quote {refusal:?}");
    }
    let about_second: Vec<&str> = guide
        .split("\n\n")
        .filter(|p| plain(p).contains("second shout server") || p.contains("second server"))
        .collect();
    assert!(!about_second.is_empty(), "GUIDE says nothing about a second server");
    for paragraph in about_second {
        assert!(
            paragraph.contains("refused") && !paragraph.contains("without complaint"),
            "GUIDE claims a second server is not refused:\n{paragraph}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Manual pages

/// A roff page with the escapes a flag or a code meets undone.
fn unroff(page: &str) -> String {
    page.replace(r"\-", "-").replace(r"\fB", "").replace(r"\fI", "").replace(r"\fR", "")
}

#[test]
fn man_writes_a_page_per_subcommand_with_its_options_and_exit_status() {
    let dir = Scratch::new("man-pages");
    let pages = dir.path().join("man1");
    let out = shout(&["man", "--dir", pages.to_str().unwrap()], WAIT);
    assert_eq!(out.code(), Some(0), "{out}");
    let mut expected = vec![("shout".to_string(), vec!["--help".to_string()])];
    for sub in subcommands() {
        expected.push((format!("shout-{sub}"), vec![sub]));
    }
    let mut written: Vec<String> = out.stdout.lines().map(String::from).collect();
    written.sort();
    let mut files: Vec<String> =
        expected.iter().map(|(name, _)| format!("{}/{name}.1", pages.display())).collect();
    files.sort();
    assert_eq!(written, files, "--dir writes shout.1 and a page per subcommand, and lists them");
    for (name, args) in &expected {
        let path = pages.join(format!("{name}.1"));
        let page = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}.1: {e}"));
        let text = unroff(&page);
        assert!(text.contains(&format!(".TH {name} 1")), "{name}.1 is titled {name}");
        let help = if args[0] == "--help" { help_of(&["--help"]) } else { help(&args[0]) };
        let flags = help_flags(&help);
        for flag in &flags {
            assert!(text.contains(flag.as_str()), "{name}.1 lacks {flag} of its --help");
        }
        let status = text.split_once(".SH \"EXIT STATUS\"").map(|(_, s)| s);
        let status = status.unwrap_or_else(|| panic!("{name}.1 has no EXIT STATUS"));
        let status = status.split("\n.SH ").next().unwrap_or_default();
        let codes = help_exit_codes(&help);
        assert!(!codes.is_empty(), "{name}: --help lists no exit codes");
        for (code, meaning) in codes {
            assert!(
                status.contains(&format!(".TP\n{code}\n")) && plain(status).contains(&meaning),
                "{name}.1's EXIT STATUS lacks {code} ({meaning}):\n{status}"
            );
        }
        // `shout man [SUB]` prints the very page --dir wrote.
        let one: Vec<&str> = match name.split_once('-') {
            Some((_, sub)) => vec!["man", sub],
            None => vec!["man"],
        };
        assert_eq!(shout(&one, WAIT).stdout, page, "shout {one:?} prints {name}.1");
    }
    let unknown = shout(&["man", "nosuch"], WAIT);
    assert_eq!(unknown.code(), Some(2), "{unknown}");
    assert!(unknown.stderr.contains("server"), "the error names the pages: {unknown}");
}

#[test]
fn man_renders_the_pages() {
    let installed = Command::new("man").arg("--version").output().is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("SKIPPED: man_renders_the_pages: man is not installed");
        return;
    }
    let dir = Scratch::new("man-render");
    let out = shout(&["man", "--dir", dir.path().to_str().unwrap()], WAIT);
    assert_eq!(out.code(), Some(0), "{out}");
    for path in out.stdout.lines() {
        let shown = Command::new("man")
            .args(["-l", path])
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("running man");
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.status.success(),
            "man -l {path}: {}",
            String::from_utf8_lossy(&shown.stderr)
        );
        for section in ["NAME", "SYNOPSIS", "EXIT STATUS", "SEE ALSO"] {
            assert!(text.contains(section), "man -l {path} shows no {section}:\n{text}");
        }
    }
}
