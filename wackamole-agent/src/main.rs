//! The `wackamole` binary: the agent daemon and its command-line tools.
//!
//! `wackamole run` is the daemon; `check-config`, `import-conf` and `ctl` are
//! the operator's tools. Exit codes: 0 ok, 1 runtime failure, 2 bad
//! configuration or usage.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_CONFIG: &str = "/etc/wackamole/wackamole.toml";

#[derive(Parser)]
#[command(
    name = "wackamole",
    version,
    about = "N-way IP failover for a pool of virtual IPs (XDP + Corosync/Spread)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (as root).
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration file; exit 2 if it is bad.
    CheckConfig {
        /// Configuration file to check.
        #[arg(default_value = DEFAULT_CONFIG)]
        file: PathBuf,
    },
    /// Translate an old `wackamole.conf` into the TOML configuration (printed on stdout).
    ImportConf {
        /// The old configuration file (wackamole 2.x grammar).
        file: PathBuf,
    },
    /// Talk to a running agent through its control socket.
    Ctl(wackamole::cli::CtlArgs),
    /// Write man pages or shell completions (for packaging).
    #[command(hide = true, subcommand)]
    Generate(Generate),
}

#[derive(Subcommand)]
enum Generate {
    /// wackamole.8 and wackamole.toml.5 into DIR.
    Man { dir: PathBuf },
    /// The completion script for SHELL into DIR, under the name the shell looks for.
    Completions {
        shell: clap_complete::Shell,
        dir: PathBuf,
    },
}

fn generate(what: Generate) -> ExitCode {
    use wackamole::cli::generate::{write_completions, write_man_pages};
    let written = match what {
        Generate::Man { dir } => write_man_pages(Cli::command(), &dir),
        Generate::Completions { shell, dir } => {
            write_completions(Cli::command(), shell, &dir).map(|p| vec![p])
        }
    };
    match written {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wackamole generate: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => wackamole::daemon::main(&config),
        Command::CheckConfig { file } => wackamole::cli::check_config(&file),
        Command::ImportConf { file } => wackamole::cli::import_conf(&file),
        Command::Ctl(args) => wackamole::cli::ctl(args),
        Command::Generate(what) => generate(what),
    }
}
