//! The operator's commands of the `wackamole` binary: `check-config`,
//! `import-conf` and `ctl` (and the packaging's hidden `generate`).

pub mod generate;

use crate::control::client::{request_blocking, DEFAULT_TIMEOUT};
use crate::control::protocol::Request;
use crate::control::render::render;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1))
}

/// `wackamole check-config FILE`: 0 valid, 2 invalid (each problem named with file:line).
pub fn check_config(file: &Path) -> ExitCode {
    code(crate::config::check_config_main(file))
}

/// `wackamole import-conf OLD`: the equivalent TOML on stdout.
pub fn import_conf(file: &Path) -> ExitCode {
    code(crate::config::legacy::import_conf_main(file))
}

/// `wackamole ctl`: one request to the running agent.
#[derive(Args)]
pub struct CtlArgs {
    /// The agent's control socket.
    #[arg(short, long, default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
    /// Print the reply as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand)]
pub enum CtlCommand {
    /// VIFs, owners, states and per-VIP counters.
    List,
    /// Engine, view, members, maturity, leader, last failover.
    Status,
    /// Simulate a failure: release everything and leave the group (wackatrl -f).
    Fail,
    /// Rejoin after `fail` (wackatrl -s).
    Recover,
    /// Move a VIF (by name or first address) to a node.
    Move {
        /// The VIF's name or first address.
        vif: String,
        /// The node's name.
        node: String,
    },
    /// Move every VIF away from a node (default: this one) and keep it empty.
    Drain {
        /// The node's name (default: this node).
        node: Option<String>,
    },
    /// Let a drained node take VIFs again.
    Undrain {
        /// The node's name (default: this node).
        node: Option<String>,
    },
    /// Run a balance round now.
    Balance,
}

/// Runs a `ctl` subcommand: exit 0 when the agent says ok, 1 otherwise.
pub fn ctl(args: CtlArgs) -> ExitCode {
    let local = || {
        let status = request_blocking(&args.socket, &Request::Status, DEFAULT_TIMEOUT)
            .ok()
            .and_then(|r| r.status)
            .map(|s| s.node);
        status.unwrap_or_default()
    };
    let request = match &args.command {
        CtlCommand::List => Request::List,
        CtlCommand::Status => Request::Status,
        CtlCommand::Fail => Request::Fail,
        CtlCommand::Recover => Request::Recover,
        CtlCommand::Move { vif, node } => Request::Move {
            vif: vif.clone(),
            node: node.clone(),
        },
        CtlCommand::Drain { node } => Request::Drain {
            node: node.clone().unwrap_or_else(local),
        },
        CtlCommand::Undrain { node } => Request::Undrain {
            node: node.clone().unwrap_or_else(local),
        },
        CtlCommand::Balance => Request::Balance,
    };
    match request_blocking(&args.socket, &request, DEFAULT_TIMEOUT) {
        Ok(reply) => {
            print!("{}", render(&reply, args.json));
            if reply.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("wackamole ctl: {e:#}");
            ExitCode::from(1)
        }
    }
}
