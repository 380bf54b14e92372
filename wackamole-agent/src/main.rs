//! The `wackamole` binary: the agent daemon and its command-line tools.
//!
//! `wackamole run` is the daemon; `check-config`, `import-conf` and `ctl` are
//! the operator's tools. Exit codes: 0 ok, 1 runtime failure, 2 bad
//! configuration or usage.

use clap::{Parser, Subcommand};
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
        #[arg(default_value = DEFAULT_CONFIG)]
        file: PathBuf,
    },
    /// Translate an old `wackamole.conf` into the TOML configuration (printed on stdout).
    ImportConf { file: PathBuf },
    /// Talk to a running agent through its control socket.
    Ctl(wackamole::cli::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => wackamole::daemon::main(&config),
        Command::CheckConfig { file } => wackamole::cli::check_config(&file),
        Command::ImportConf { file } => wackamole::cli::import_conf(&file),
        Command::Ctl(args) => wackamole::cli::ctl(args),
    }
}
