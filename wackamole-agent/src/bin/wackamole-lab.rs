//! `wackamole-lab`: demonstrations in network namespaces on this machine.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use wackamole::dataplane::XdpAttachMode;
use wackamole::lab::cluster_demo::{self, DemoOptions, Interrupted};

#[derive(Parser)]
#[command(
    name = "wackamole-lab",
    about = "wackamole demonstrations in network namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A simulated LAN of agents on Corosync: maturity, client traffic, a
    /// node crash and its outage, the return, a drain. About a minute.
    Demo {
        /// Nodes (2..=16).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// VIPs (1..=99).
        #[arg(long, default_value_t = 6)]
        vips: usize,
        /// Short variant: maturity, one crash, the return.
        #[arg(long)]
        quick: bool,
        /// The agent binary (default: `wackamole` next to this program).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// The XDP data plane answering ARP for a VIP, then silenced on release.
    DemoDataplane {
        /// XDP attach mode: auto, native or skb.
        #[arg(long, default_value = "auto", value_parser = parse_mode)]
        mode: XdpAttachMode,
    },
}

fn parse_mode(s: &str) -> Result<XdpAttachMode, String> {
    match s {
        "auto" => Ok(XdpAttachMode::Auto),
        "native" => Ok(XdpAttachMode::Native),
        "skb" => Ok(XdpAttachMode::Skb),
        other => Err(format!("unknown mode {other:?} (auto, native, skb)")),
    }
}

fn sibling_agent() -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating wackamole-lab")?;
    Ok(me.with_file_name("wackamole"))
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if !wackamole::testbed::is_root() {
        bail!("wackamole-lab needs root (network namespaces, XDP)");
    }
    match cli.command {
        Command::Demo {
            nodes,
            vips,
            quick,
            binary,
        } => {
            cluster_demo::install_sigint_handler()?;
            let opts = DemoOptions {
                binary: match binary {
                    Some(b) => b,
                    None => sibling_agent()?,
                },
                nodes,
                vips,
                quick,
            };
            match cluster_demo::run(&opts, &mut std::io::stdout().lock()) {
                Ok(_) => Ok(()),
                // Everything was dropped (cleaned up) on the way out.
                Err(e) if e.is::<Interrupted>() || cluster_demo::interrupted() => {
                    eprintln!("interrupted: cleaned up");
                    std::process::exit(130);
                }
                Err(e) => Err(e),
            }
        }
        Command::DemoDataplane { mode } => {
            wackamole::lab::dataplane_demo::run(mode, &mut std::io::stdout().lock())
        }
    }
}
