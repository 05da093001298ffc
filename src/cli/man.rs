//! `shout man`: the manual pages, one per command (shout(1), shout-server(1),
//! shout-client(1), ...), made by clap_mangen from the definitions `--help`
//! shows, so they list the same options; each help's `Exit codes:` block
//! becomes the page's EXIT STATUS, the rest of it EXAMPLES. SYNOPSIS is our
//! own, so that options show their values (`[--interval <DURATION>]`), which
//! clap_mangen's leaves out. A new subcommand
//! gets its page without a line here.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

use super::UsageError;

/// `shout man`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// The subcommand whose page to print (server, client, bench, ...); without it, shout(1).
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "dir")]
    subcommand: Option<String>,
    /// Write every page into DIR (created if missing) as shout.1, shout-server.1, ...; prints each path written.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl ManArgs {
    /// Prints one page of `cli`'s, or writes them all to `--dir`.
    pub fn run(self, cli: clap::Command) -> Result<ExitCode> {
        let pages = pages(cli)?;
        let mut out = io::stdout().lock();
        let written = match &self.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let mut listed = Ok(());
                for page in &pages {
                    let path = dir.join(page.file_name());
                    std::fs::write(&path, &page.roff)
                        .with_context(|| format!("writing {}", path.display()))?;
                    listed = listed.and_then(|()| writeln!(out, "{}", path.display()));
                }
                listed
            }
            None => {
                let name = match &self.subcommand {
                    None => pages[0].name.clone(),
                    Some(sub) => format!("{}-{sub}", pages[0].name),
                };
                let page = pages.iter().find(|p| p.name == name).ok_or_else(|| {
                    let subs: Vec<&str> = pages[1..]
                        .iter()
                        .map(|p| p.name.split_once('-').map_or(&*p.name, |(_, sub)| sub))
                        .collect();
                    let sub = self.subcommand.as_deref().unwrap_or_default();
                    UsageError(format!("no manual page for {sub:?}: one of {}", subs.join(", ")))
                })?;
                out.write_all(&page.roff)
            }
        };
        match written.and_then(|()| out.flush()) {
            // Nobody left to read the rest, as with `shout man | head`.
            Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
                Err(err).context("writing the manual page")
            }
            _ => Ok(ExitCode::SUCCESS),
        }
    }
}

/// One manual page.
pub struct Page {
    /// `shout`, `shout-server`, ...
    pub name: String,
    /// The page, in roff.
    pub roff: Vec<u8>,
}

impl Page {
    /// Its file name in section 1: `shout-server.1`.
    pub fn file_name(&self) -> String {
        format!("{}.1", self.name)
    }
}

/// The pages of `cli` and of each of its subcommands (not `help`), top first.
pub fn pages(cli: clap::Command) -> Result<Vec<Page>> {
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    let mut commands = vec![cli.clone()];
    let mut i = 0;
    while i < commands.len() {
        let subs: Vec<_> =
            commands[i].get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
        commands.extend(subs);
        i += 1;
    }
    let names: Vec<String> = commands.iter().map(page_name).collect();
    let source = format!("{} {}", cli.get_name(), cli.get_version().unwrap_or_default());
    commands
        .iter()
        .zip(&names)
        .map(|(cmd, name)| {
            let roff = render(cmd, &names, &source).context("rendering a manual page")?;
            Ok(Page { name: name.clone(), roff })
        })
        .collect()
}

/// `shout-server` for `shout server` (clap's display name once built).
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_string()
}

/// clap_mangen's sections in man-pages(7) order, with EXIT STATUS, EXAMPLES
/// and SEE ALSO of our own between OPTIONS and VERSION.
fn render(cmd: &clap::Command, names: &[String], source: &str) -> io::Result<Vec<u8>> {
    let man = Man::new(cmd.clone()).source(source).manual("shout manual");
    // Each `render_*` writes roff's preamble first; the page keeps one.
    let preamble = Roff::new().render().into_bytes();
    let mut page = Vec::new();
    let mut add = |render: &dyn Fn(&mut dyn Write) -> io::Result<()>| -> io::Result<()> {
        let mut section = Vec::new();
        render(&mut section)?;
        let body = if page.is_empty() { &section[..] } else { strip(&section, &preamble) };
        page.extend_from_slice(body);
        Ok(())
    };
    add(&|w| man.render_title(w))?;
    add(&|w| man.render_name_section(w))?;
    add(&|w| w.write_all(synopsis(cmd).as_bytes()))?;
    add(&|w| man.render_description_section(w))?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        add(&|w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        add(&|w| man.render_subcommands_section(w))?;
    }
    let after_help = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    let (notes, codes) = split_after_help(&after_help);
    let own = page_name(cmd);
    let extra = extra_sections(&notes, &codes, names.iter().filter(|n| **n != own));
    add(&|w| extra.to_writer(w))?;
    if cmd.get_version().is_some() {
        add(&|w| man.render_version_section(w))?;
    }
    Ok(page)
}

/// SYNOPSIS as clap_mangen writes it, but with each option's value after it
/// (`[--interval <DURATION>]`, not `[--interval]`), as `--help` shows them;
/// the line never breaks between an option and its value.
fn synopsis(cmd: &clap::Command) -> String {
    let markers = |required: bool| if required { ("<", ">") } else { ("[", "]") };
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    let mut line = vec![bold(name), roman(" ")];
    let mut opts: Vec<&clap::Arg> =
        cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()).collect();
    // clap_mangen's order: display order, then the short or long name.
    opts.sort_by_key(|a| {
        let key = match (a.get_short(), a.get_long()) {
            (Some(c), _) => {
                format!("{}{}", c.to_ascii_lowercase(), u8::from(!c.is_ascii_lowercase()))
            }
            (None, Some(long)) => long.to_string(),
            (None, None) => format!("{{{}", a.get_id()),
        };
        (a.get_display_order(), key)
    });
    for opt in opts {
        let (lhs, rhs) = markers(opt.is_required_set());
        line.push(roman(lhs));
        match (opt.get_short(), opt.get_long()) {
            (Some(short), Some(long)) => {
                line.extend([bold(format!("-{short}")), roman("|"), bold(format!("--{long}"))]);
            }
            (Some(short), None) => line.push(bold(format!("-{short}"))),
            (None, Some(long)) => line.push(bold(format!("--{long}"))),
            (None, None) => continue,
        }
        line.extend(value_placeholder(opt));
        line.push(roman(rhs));
        if matches!(opt.get_action(), clap::ArgAction::Count | clap::ArgAction::Append) {
            line.push(roman("..."));
        }
        line.push(roman(" "));
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let (lhs, rhs) = markers(arg.is_required_set());
        line.push(roman(lhs));
        line.push(italic(value_names(arg).join(" ")));
        line.push(roman(rhs));
        if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
            line.push(roman("..."));
        }
        line.push(roman(" "));
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        let (lhs, rhs) = markers(cmd.is_subcommand_required_set());
        let heading = cmd.get_subcommand_help_heading().unwrap_or("SUBCOMMANDS");
        let value = cmd.get_subcommand_value_name().unwrap_or(heading).to_lowercase();
        line.extend([roman(lhs), italic(value), roman(rhs)]);
    }
    let mut roff = Roff::new();
    // No hyphen breaks in the middle of an option (`--proto-col`) either.
    roff.control("SH", ["SYNOPSIS"]).control("nh", []).text(line).control("hy", []);
    // roff escapes every backslash it is given: the unpaddable space `\ `
    // goes in after rendering, in place of the NBSP that marks where it belongs.
    roff.to_roff().replace(NBSP, "\\ ")
}

/// Stands for roff's unpaddable space in [`synopsis`] until it is rendered.
const NBSP: char = '\u{a0}';

/// An argument's value names as `--help` shows them: its `value_name`s, or
/// its id in capitals.
fn value_names(arg: &clap::Arg) -> Vec<String> {
    match arg.get_value_names() {
        Some(names) => names.iter().map(|n| n.to_string()).collect(),
        None => vec![arg.get_id().as_str().to_uppercase()],
    }
}

/// ` <NAME>` after an option that takes a value (` [<NAME>]` where the value
/// may be left out); nothing after a flag.
fn value_placeholder(opt: &clap::Arg) -> Vec<clap_mangen::roff::Inline> {
    let takes = opt.get_num_args().is_some_and(|n| n.takes_values());
    if !takes {
        return Vec::new();
    }
    let optional = opt.get_num_args().is_some_and(|n| n.min_values() == 0);
    let names: Vec<String> = value_names(opt).iter().map(|n| format!("<{n}>")).collect();
    let (lhs, rhs) = match (optional, opt.is_require_equals_set()) {
        (false, false) => ("\u{a0}", ""),
        (false, true) => ("=", ""),
        (true, false) => ("\u{a0}[", "]"),
        (true, true) => ("[=", "]"),
    };
    vec![roman(lhs), italic(names.join(" ")), roman(rhs)]
}

fn strip<'a>(section: &'a [u8], preamble: &[u8]) -> &'a [u8] {
    section.strip_prefix(preamble).unwrap_or(section)
}

/// EXIT STATUS from the exit codes, EXAMPLES (or NOTES) from the rest of the
/// help's epilogue, SEE ALSO naming the other pages.
fn extra_sections<'a>(
    notes: &[&str],
    codes: &[(String, String)],
    others: impl Iterator<Item = &'a String>,
) -> Roff {
    let mut roff = Roff::new();
    if !codes.is_empty() {
        roff.control("SH", ["EXIT STATUS"]);
        for (code, meaning) in codes {
            roff.control("TP", []).text([bold(code.as_str())]).text([roman(meaning.as_str())]);
        }
    }
    if let Some((first, rest)) = notes.split_first() {
        let (heading, lines) = match first.trim() {
            "Example:" | "Examples:" => ("EXAMPLES", rest),
            _ => ("NOTES", notes),
        };
        roff.control("SH", [heading]).control("nf", []);
        for line in lines {
            roff.text([roman(*line)]);
        }
        roff.control("fi", []);
    }
    let see_also: Vec<String> = others.map(|name| format!("{name}(1)")).collect();
    if !see_also.is_empty() {
        roff.control("SH", ["SEE ALSO"]).text([roman(see_also.join(", "))]);
    }
    roff
}

/// A help epilogue split into its other lines (blank lines around them
/// dropped) and the `Exit codes...:` block as (code, meaning), a meaning's
/// wrapped lines joined.
fn split_after_help(text: &str) -> (Vec<&str>, Vec<(String, String)>) {
    let mut notes = Vec::new();
    let mut codes: Vec<(String, String)> = Vec::new();
    let mut in_codes = false;
    for line in text.lines() {
        if line.starts_with("Exit codes") && line.ends_with(':') {
            in_codes = true;
            continue;
        }
        in_codes &= line.starts_with(' ');
        if !in_codes {
            notes.push(line);
            continue;
        }
        let (first, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        if first.bytes().all(|b| b.is_ascii_digit()) {
            codes.push((first.to_string(), rest.trim().to_string()));
        } else if let Some((_, meaning)) = codes.last_mut() {
            meaning.push(' ');
            meaning.push_str(line.trim());
        }
    }
    while notes.last().is_some_and(|l| l.trim().is_empty()) {
        notes.pop();
    }
    let blank = notes.iter().take_while(|l| l.trim().is_empty()).count();
    (notes.split_off(blank), codes)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::Cli;

    /// A page's text with roff's escapes undone, enough to find flags in it.
    fn text(page: &Page) -> String {
        String::from_utf8(page.roff.clone()).unwrap().replace(r"\-", "-").replace(r"\fB", "")
    }

    #[test]
    fn every_command_has_a_page_with_its_options_and_exit_status() {
        let pages = pages(Cli::command()).unwrap();
        let mut cli = Cli::command().disable_help_subcommand(true);
        cli.build();
        let mut commands = vec![cli.clone()];
        commands.extend(cli.get_subcommands().cloned());
        assert!(commands.len() >= 6, "shout and its subcommands");
        for cmd in &commands {
            let name = page_name(cmd);
            let page = pages.iter().find(|p| p.name == name).unwrap_or_else(|| {
                panic!(
                    "no page {name} among {:?}",
                    pages.iter().map(|p| &p.name).collect::<Vec<_>>()
                )
            });
            let text = text(page);
            assert!(text.starts_with(".ie") && text.matches(".ie").count() == 1, "{name}: {text}");
            assert!(text.contains(&format!(".TH {name} 1")), "{name}: a title");
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let shown = match (arg.get_long(), arg.get_short()) {
                    (Some(long), _) => format!("--{long}"),
                    (None, Some(short)) => format!("-{short}"),
                    (None, None) => match arg.get_value_names() {
                        Some([name, ..]) => name.to_string(),
                        _ => arg.get_id().to_string().to_uppercase(),
                    },
                };
                assert!(text.contains(&shown), "{name}(1) lacks {shown}");
            }
            assert!(text.contains(".SH \"EXIT STATUS\""), "{name}(1) has no EXIT STATUS");
            assert!(text.contains(".SH \"SEE ALSO\""), "{name}(1) has no SEE ALSO");
            assert!(!text.contains("shout-help"), "{name}(1): no page for `help`");
        }
        assert_eq!(pages.len(), commands.len(), "one page per command");
    }

    #[test]
    fn the_synopsis_shows_every_options_value_name() {
        let pages = pages(Cli::command()).unwrap();
        let mut cli = Cli::command().disable_help_subcommand(true);
        cli.build();
        let mut commands = vec![cli.clone()];
        commands.extend(cli.get_subcommands().cloned());
        for cmd in &commands {
            let name = page_name(cmd);
            let page = pages.iter().find(|p| p.name == name).unwrap();
            let roff = String::from_utf8(page.roff.clone()).unwrap();
            let synopsis = roff.split(".SH SYNOPSIS").nth(1).unwrap().split(".SH").next().unwrap();
            assert_eq!(roff.matches(".ie").count(), 1, "{name}: one preamble");
            assert!(!synopsis.contains('\u{a0}'), "{name}: {synopsis}");
            let plain = synopsis
                .replace(r"\fB", "")
                .replace(r"\fI", "")
                .replace(r"\fR", "")
                .replace(r"\-", "-")
                .replace(r"\ ", " ");
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set() && !a.is_positional()) {
                let Some(long) = arg.get_long() else { continue };
                if !arg.get_num_args().is_some_and(|n| n.takes_values()) {
                    assert!(plain.contains(&format!("--{long}]")), "{name}: {long} in {plain}");
                    continue;
                }
                // Named on purpose, never clap's id in capitals (`<EXPECT>`).
                let names = arg.get_value_names().unwrap_or_else(|| {
                    panic!("{name}: --{long} takes a value but has no value_name")
                });
                let shown = format!("--{long} <{}>", names.join("> <"));
                assert!(plain.contains(&shown), "{name}(1) synopsis lacks {shown:?}: {plain}");
                // Unbreakable between the option and its value.
                let escaped = long.replace('-', r"\-");
                assert!(synopsis.contains(&format!(r"\-{escaped}\fR\ \fI<")), "{name}: {synopsis}");
            }
        }
        let probe = pages.iter().find(|p| p.name == "shout-probe").unwrap();
        let text = String::from_utf8(probe.roff.clone()).unwrap().replace(r"\-", "-");
        assert!(text.contains(r"[\fB--interval\fR\ \fI<DURATION>\fR]"), "{text}");
        assert!(text.contains(r"[\fITARGET\fR]..."), "{text}");
    }

    #[test]
    fn the_epilogue_splits_into_examples_and_exit_codes() {
        let help = "Examples:\n  shout x\n\nExit codes:\n  0  fine\n  1  a long\n     meaning\n  2  usage\n";
        let (notes, codes) = split_after_help(help);
        assert_eq!(notes, ["Examples:", "  shout x"]);
        let codes: Vec<(&str, &str)> =
            codes.iter().map(|(c, m)| (c.as_str(), m.as_str())).collect();
        assert_eq!(codes, [("0", "fine"), ("1", "a long meaning"), ("2", "usage")]);
        let (notes, codes) = split_after_help("Exit codes (see each):\n  0  ok\n");
        assert!(notes.is_empty());
        assert_eq!(codes.len(), 1);
    }
}
