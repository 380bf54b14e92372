//! The corpus of bad inputs: every file under `tests/fixtures/bad-configs`
//! (for `check-config`) and `tests/fixtures/bad-legacy` (for `import-conf`)
//! is refused, with each message its `# expect: TEXT` header lines name.
//! A new case is a new file: no code to write.

use std::path::{Path, PathBuf};

use wackamole::config::legacy::import_conf_main;
use wackamole::config::*;

/// Interfaces from a fixed list, everything else (the bpffs_dir checks)
/// from the real system.
struct Host(FakeInterfaces);

impl InterfaceCheck for Host {
    fn interface_exists(&self, name: &str) -> bool {
        self.0.interface_exists(name)
    }
    fn hostname(&self) -> Option<String> {
        self.0.hostname()
    }
    fn mount_point(&self, path: &Path) -> MountPoint {
        SystemInterfaces.mount_point(path)
    }
}

fn corpus(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{}: corpus too small", dir.display());
    files
}

/// The `# expect: ` lines at the top of the file (read as bytes: some
/// files are not UTF-8 past their header on purpose).
fn expectations(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).expect("fixture");
    let expects: Vec<String> = bytes
        .split(|&b| b == b'\n')
        .take_while(|l| l.starts_with(b"#"))
        .filter_map(|l| l.strip_prefix(b"# expect: "))
        .map(|l| String::from_utf8(l.to_vec()).expect("UTF-8 header"))
        .collect();
    assert!(
        !expects.is_empty(),
        "{}: no `# expect:` line",
        path.display()
    );
    expects
}

fn check(path: &Path, shown: &str) {
    // Messages name the file as given; the expectations use its bare name.
    let dir = format!("{}/", path.parent().expect("parent").display());
    let shown = shown.replace(&dir, "");
    for want in expectations(path) {
        assert!(
            shown.contains(&want),
            "{}:\n  expected: {want}\n  got:      {shown}",
            path.display()
        );
    }
    for line in shown.lines() {
        let (_, message) = line.rsplit_once(": ").unwrap_or(("", line));
        assert!(!message.trim().is_empty(), "empty message: {line:?}");
        assert!(
            !line.chars().any(|c| c.is_control()),
            "control character in {line:?}"
        );
        assert!(!line.contains("please report"), "{line}");
    }
}

#[test]
fn bad_configs_are_refused_with_their_message() {
    let host = Host(FakeInterfaces::new(["lo", "eth0", "eth1"]));
    for path in corpus("bad-configs", "toml") {
        match load_with(&path, &host) {
            Ok(cfg) => panic!("{}: accepted: {cfg:?}", path.display()),
            Err(e) => check(&path, &e.to_string()),
        }
    }
}

#[test]
fn bad_legacy_files_are_refused_with_their_message() {
    for path in corpus("bad-legacy", "conf") {
        let text = std::fs::read_to_string(&path).expect("fixture");
        let name = path.display().to_string();
        match wackamole::config::legacy::import(&text, &name) {
            Ok(imp) => panic!("{}: imported:\n{}", path.display(), imp.toml),
            Err(e) => check(&path, &e.to_string()),
        }
        assert_eq!(import_conf_main(&path), 2, "{}", path.display());
    }
}
