//! The docs match the binary (issue 10, item 6): README.md's usage lines list every flag
//! that each subcommand's `--help` shows, and no flag it lacks; the `--max-datagram`
//! default is stated as the binary has it.

use std::collections::BTreeSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shout");

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
