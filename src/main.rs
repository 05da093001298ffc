//! The `shout` command line: parse, dispatch, exit code. Each subcommand's
//! arguments and the glue around its run are in [`cli`]; the work is in the
//! `shout` library, which needs none of the command-line crates.

// A binary has no API: `pub` in its modules only says "used by main".
#![allow(unreachable_pub)]

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cli;

use cli::{BenchArgs, ClientArgs, ProbeArgs, ServerArgs};
use cli::{CLIENT_EXIT_CODES, EXIT_CODES, PRINT_EXIT_CODES, SERVER_EXIT_CODES};

/// A UDP uppercase server, a client that never hangs, and a load tool.
#[derive(Parser, Debug)]
#[command(name = "shout", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Answer every datagram with the same bytes, ASCII letters uppercased.
    #[command(after_help = format!("Examples:\n  shout server\n  shout server --bind [::1]:9000 --bind 127.0.0.1:9000 --quiet\n  shout server --mode echo --max-datagram 1232\n  shout server --mode stamp --bind 0.0.0.0:862 --stamp-stateful\n\n{SERVER_EXIT_CODES}"))]
    Server(ServerArgs),
    /// Send messages and print the replies: from arguments, a pipe, or a prompt.
    #[command(after_help = format!("Examples:\n  shout client 127.0.0.1:8080 hello world\n  printf 'a\\nb\\n' | shout client 127.0.0.1:8080\n  shout client            (interactive, on a terminal)\n\n{CLIENT_EXIT_CODES}"))]
    Client(ClientArgs),
    /// Measure a server: answers/s, loss and round-trip times, every reply checked.
    #[command(after_help = cli::bench::HELP)]
    Bench(BenchArgs),
    /// Measure many targets continuously (STAMP, upper, echo) into Prometheus, a live table or JSON lines.
    #[command(after_help = cli::probe::HELP)]
    Probe(ProbeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = format!(
        "Example:\n  shout completions bash > ~/.local/share/bash-completion/completions/shout\n\n{PRINT_EXIT_CODES}"
    ))]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff) on stdout, or write them all to a directory.
    #[command(after_help = format!(
        "Examples:\n  shout man | man -l -\n  shout man bench | man -l -\n  shout man --dir /usr/local/share/man/man1\n\n{PRINT_EXIT_CODES}"
    ))]
    Man(cli::man::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(matches!(&cli.command, Command::Server(args) if args.json_logs()));
    cli::exit_code(match cli.command {
        Command::Server(args) => args.run(),
        Command::Client(args) => args.run(),
        Command::Bench(args) => args.run(),
        Command::Probe(args) => args.run(),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "shout", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(args) => args.run(Cli::command()),
    })
}
