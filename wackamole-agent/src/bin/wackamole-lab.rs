//! `wackamole-lab`: demonstrations in network namespaces on this machine.

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use wackamole::dataplane::XdpAttachMode;

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
    /// The XDP data plane answering ARP for a VIP, then silenced on release.
    Demo {
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
        Command::Demo { mode } => {
            wackamole::lab::dataplane_demo::run(mode, &mut std::io::stdout().lock())
        }
    }
}
