//! The `wackamole` binary: the agent daemon and its command-line tools.

fn main() {
    eprintln!("wackamole: not assembled yet");
    std::process::exit(2);
}
