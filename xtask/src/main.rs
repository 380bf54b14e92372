//! `cargo xtask`: the project's build-and-load tool.
//!
//! Every step says what it runs; a failure names the command or the missing
//! piece. Subcommands live in their own modules.

mod build;
mod lint;
mod package;
mod setup;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, set up, test, lint, demo and benchmark wackamole"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a fresh Debian 12 machine ready: apt packages, rust-src, bpf-linker.
    Setup,
    /// Build the eBPF object (nightly), the agent embedding it and the lab binary
    /// (stable, release), then the shipped agent (profile dist: target/dist/wackamole).
    Build,
    /// Run every test, the ignored ones too (needs root: XDP, namespaces,
    /// corosync; the Spread live tests also need WACKAMOLE_SPREAD_DAEMON).
    Test {
        /// Only the tests that need no root, no eBPF object and no Corosync
        /// (stable Rust alone); the ignored ones are listed, not run.
        #[arg(long)]
        unprivileged: bool,
        /// Extra arguments passed to `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// rustfmt check and clippy -D warnings on the host crates and the eBPF crate.
    Lint,
    /// Build and run the agent with the given arguments.
    Run {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run a benchmark and write target/bench/<name>.json.
    Bench {
        /// dataplane | allocation | membership | failover
        name: String,
        /// Extra arguments for the benchmark.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build target/debian/wackamole_<version>_<arch>.deb (dpkg-deb).
    Package {
        /// Then install it here with dpkg -i, exercise it, remove and purge it (root).
        #[arg(long)]
        check: bool,
    },
    /// The cluster demo in network namespaces.
    Demo {
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::setup(),
        Command::Build => build::build_product(),
        Command::Test { unprivileged, args } => build::test(unprivileged, &args),
        Command::Lint => lint::lint(),
        Command::Run { args } => build::run_agent(&args),
        Command::Bench { name, args } => build::bench(&name, &args),
        Command::Demo { args } => build::demo(&args),
        Command::Package { check } => package::package(check),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
