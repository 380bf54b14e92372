//! `cargo xtask package [--check]`: the Debian package.
//!
//! The tree is staged under target/debian/stage and packed by `dpkg-deb
//! --build` (Debian's own tool, already on every Debian machine; Depends
//! comes from `dpkg-shlibdeps` on the built binary). Man pages and
//! completions come from the built binary's hidden `generate` command.
//! `--check` installs the package on this machine with `dpkg -i`, exercises
//! it, removes and purges it (also when a step fails).

use crate::util::{output, require_root, root, run, show};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const NAME: &str = "wackamole";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAINTAINER: &str = "wackamole developers <wackamole@example.invalid>";
const CONFFILE: &str = "/etc/wackamole/wackamole.toml";
/// Debian 12 ships units under /lib (moving them to /usr/lib is for trixie).
const UNIT: &str = "/lib/systemd/system/wackamole.service";

const DESCRIPTION: &str = "\
N-way IP failover agent for a pool of virtual IPs
 wackamole spreads a pool of virtual IPs over a cluster of Linux machines:
 every VIP is held by exactly one connected node, nodes carry balanced
 shares, and a VIP moves within milliseconds when a node fails. Membership
 comes from Corosync 3 (CPG) or a Spread 4 daemon; an XDP program answers ARP
 for the node's VIPs, silences released ones at once and fences the node by
 itself when the agent stops renewing its lease.
 .
 The service is not started until enabled: edit /etc/wackamole/wackamole.toml,
 run `wackamole check-config`, then `systemctl enable --now wackamole`.";

const POSTINST: &str = "#!/bin/sh
# Make systemd see the new unit. The service is neither enabled nor started:
# the operator does that once the configuration is written.
set -e
if [ \"$1\" = configure ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
exit 0
";

const PRERM: &str = "#!/bin/sh
# A removed package must not leave its agent running from a deleted binary:
# stopping releases the node's VIFs (others take them over). Upgrades leave
# it running; restart it when convenient.
set -e
if [ \"$1\" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop wackamole.service >/dev/null 2>&1 || true
fi
exit 0
";

const POSTRM: &str = "#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ \"$1\" = purge ]; then
    # Left by the operator's `systemctl enable`; its unit is gone now.
    link=/etc/systemd/system/multi-user.target.wants/wackamole.service
    if [ -L \"$link\" ]; then
        rm -f \"$link\"
    fi
fi
exit 0
";

const COPYRIGHT: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: wackamole
Source: https://example.invalid/wackamole

Files: *
Copyright: the wackamole developers
License: MIT or Apache-2.0

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the \"Software\"), to
 deal in the Software without restriction, including without limitation the
 rights to use, copy, modify, merge, publish, distribute, sublicense, and/or
 sell copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
 FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS
 IN THE SOFTWARE.

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the \"License\"); you may not
 use this file except in compliance with the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 can
 be found in /usr/share/common-licenses/Apache-2.0.
";

/// Where each shell looks for completions on Debian, and the file's name.
const COMPLETIONS: &[(&str, &str, &str)] = &[
    ("bash", "usr/share/bash-completion/completions", "wackamole"),
    ("zsh", "usr/share/zsh/vendor-completions", "_wackamole"),
    (
        "fish",
        "usr/share/fish/vendor_completions.d",
        "wackamole.fish",
    ),
];

/// Files of `conf/` installed as examples.
const EXAMPLES: &[&str] = &[
    "corosync-lan-fast.conf",
    "corosync-lan-faster.conf",
    "corosync-default.conf",
    "spread-lan-fast.conf",
    "spread-lan-faster.conf",
    "grafana-dashboard.json",
];

pub fn package(check: bool) -> Result<()> {
    crate::build::build_product()?;
    let deb = build_deb()?;
    eprintln!("xtask: built {}", deb.display());
    if check {
        check_deb(&deb)?;
        eprintln!("xtask: package check passed: installed, exercised, removed and purged");
    }
    Ok(())
}

fn mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Writes `rel` under `stage` with `mode`, creating its directories.
fn put(stage: &Path, rel: &str, content: &[u8], m: u32) -> Result<PathBuf> {
    let path = stage.join(rel);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    mode(&path, m)?;
    Ok(path)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs `cmd` and returns its stdout; fails naming the command and its stderr.
fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn gzip(path: &Path) -> Result<PathBuf> {
    // -n: no name or time stamp inside, so the result is reproducible.
    run(Command::new("gzip").args(["-9", "-n", "-f"]).arg(path))?;
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    mode(&gz, 0o644)?;
    Ok(gz)
}

/// Every regular file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The commit's time (for the changelog and reproducible archives).
fn source_date_epoch() -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .or_else(|| {
            output(
                Command::new("git")
                    .args(["log", "-1", "--format=%ct"])
                    .current_dir(root()),
            )
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "0".into())
}

fn changelog(epoch: &str) -> Result<String> {
    let date = capture(
        Command::new("date")
            .args(["-u", "-R", "-d"])
            .arg(format!("@{epoch}"))
            .env("LC_ALL", "C"),
    )?;
    let commit = output(
        Command::new("git")
            .args(["log", "-1", "--format=%h"])
            .current_dir(root()),
    )
    .map(|s| format!(" from commit {}", s.trim()))
    .unwrap_or_default();
    Ok(format!(
        "{NAME} ({VERSION}) unstable; urgency=medium\n\n  * Built{commit}.\n\n -- {MAINTAINER}  {}\n",
        date.trim()
    ))
}

/// `Depends` from the libraries the binary links, by `dpkg-shlibdeps`
/// (it reads a debian/control, so one is made for it).
fn shlib_depends(binary: &Path, work: &Path) -> Result<String> {
    let dir = work.join("shlibdeps");
    put(
        &dir,
        "debian/control",
        format!("Source: {NAME}\n\nPackage: {NAME}\nArchitecture: any\n").as_bytes(),
        0o644,
    )?;
    let out = capture(
        Command::new("dpkg-shlibdeps")
            .arg("-O")
            .arg(format!("-e{}", binary.display()))
            .current_dir(&dir),
    )
    .context("dpkg-shlibdeps (package dpkg-dev: `cargo xtask setup` installs it)")?;
    let depends = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .with_context(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {out}"))?;
    Ok(depends.to_string())
}

fn build_deb() -> Result<PathBuf> {
    let out_dir = root().join("target/debian");
    let stage = out_dir.join("stage");
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let conf = root().join("conf");
    let built = crate::build::dist_binary();
    let arch = capture(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_string();

    let bin = put(&stage, "usr/sbin/wackamole", &read(&built)?, 0o755)?;
    // As dh_strip does: the release profile keeps line tables for backtraces.
    run(Command::new("strip")
        .args([
            "--remove-section=.comment",
            "--remove-section=.note",
            "--strip-unneeded",
        ])
        .arg(&bin))?;

    // The unit as written, pointed at the packaged binary.
    let unit = String::from_utf8(read(&conf.join("wackamole.service"))?)?
        .replace("/usr/local/sbin/wackamole", "/usr/sbin/wackamole");
    put(&stage, UNIT.trim_start_matches('/'), unit.as_bytes(), 0o644)?;
    put(
        &stage,
        CONFFILE.trim_start_matches('/'),
        &read(&conf.join("wackamole.toml"))?,
        0o644,
    )?;

    let doc = "usr/share/doc/wackamole";
    put(
        &stage,
        &format!("{doc}/README.md"),
        &read(&root().join("README.md"))?,
        0o644,
    )?;
    put(
        &stage,
        &format!("{doc}/copyright"),
        COPYRIGHT.as_bytes(),
        0o644,
    )?;
    let epoch = source_date_epoch();
    let cl = put(
        &stage,
        &format!("{doc}/changelog"),
        changelog(&epoch)?.as_bytes(),
        0o644,
    )?;
    gzip(&cl)?;
    for ex in EXAMPLES {
        put(
            &stage,
            &format!("{doc}/examples/{ex}"),
            &read(&conf.join(ex))?,
            0o644,
        )?;
    }

    let generated = out_dir.join("generated");
    if generated.exists() {
        fs::remove_dir_all(&generated)?;
    }
    run(Command::new(&bin)
        .args(["generate", "man"])
        .arg(&generated)
        .env("SOURCE_DATE_EPOCH", &epoch))?;
    for (page, section) in [("wackamole.8", "8"), ("wackamole.toml.5", "5")] {
        let p = put(
            &stage,
            &format!("usr/share/man/man{section}/{page}"),
            &read(&generated.join(page))?,
            0o644,
        )?;
        gzip(&p)?;
    }
    for (shell, dir, file) in COMPLETIONS {
        run(Command::new(&bin)
            .args(["generate", "completions", shell])
            .arg(&generated))?;
        put(
            &stage,
            &format!("{dir}/{file}"),
            &read(&generated.join(file))?,
            0o644,
        )?;
    }

    let depends = shlib_depends(&bin, &out_dir)?;
    let mut installed_kib = 0;
    let files = files_under(&stage)?;
    for f in &files {
        installed_kib += fs::metadata(stage.join(f))?.len().div_ceil(1024);
    }
    // md5sums of everything but the conffile (dpkg tracks that one itself).
    let mut md5 = Command::new("md5sum");
    md5.current_dir(&stage);
    for f in files
        .iter()
        .filter(|f| Path::new("/").join(f) != Path::new(CONFFILE))
    {
        md5.arg(f);
    }
    let md5sums = capture(&mut md5)?;

    let control = format!(
        "Package: {NAME}\nVersion: {VERSION}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {installed_kib}\nDepends: {depends}\nRecommends: corosync\n\
         Section: net\nPriority: optional\nDescription: {DESCRIPTION}\n"
    );
    put(&stage, "DEBIAN/control", control.as_bytes(), 0o644)?;
    put(
        &stage,
        "DEBIAN/conffiles",
        format!("{CONFFILE}\n").as_bytes(),
        0o644,
    )?;
    put(&stage, "DEBIAN/md5sums", md5sums.as_bytes(), 0o644)?;
    put(&stage, "DEBIAN/postinst", POSTINST.as_bytes(), 0o755)?;
    put(&stage, "DEBIAN/prerm", PRERM.as_bytes(), 0o755)?;
    put(&stage, "DEBIAN/postrm", POSTRM.as_bytes(), 0o755)?;
    // Directories 0755 whatever the umask.
    let mut todo = vec![stage.clone()];
    while let Some(d) = todo.pop() {
        mode(&d, 0o755)?;
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            }
        }
    }

    let deb = out_dir.join(format!("{NAME}_{VERSION}_{arch}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", &epoch))?;
    Ok(deb)
}

/// `dpkg-query`'s status of the package, None when dpkg does not know it.
fn dpkg_status() -> Option<String> {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", NAME]))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.ends_with("not-installed"))
}

/// Purges the package when dropped: the check leaves the system as it was.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if dpkg_status().is_some() {
            eprintln!("xtask: cleaning up: dpkg -P {NAME}");
            let _ = run(Command::new("dpkg").args(["-P", NAME]));
        }
    }
}

fn check_deb(deb: &Path) -> Result<()> {
    require_root("cargo xtask package --check (it installs the package)")?;
    if let Some(status) = dpkg_status() {
        bail!(
            "{NAME} is already known to dpkg ({status}); the check installs and purges the \
             package: remove it first (`dpkg -P {NAME}`)"
        );
    }
    for p in [
        "/usr/sbin/wackamole",
        CONFFILE,
        UNIT,
        "/etc/systemd/system/wackamole.service",
    ] {
        if Path::new(p).exists() {
            bail!("{p} exists outside the package; the check would overwrite it");
        }
    }
    let tmp = std::env::temp_dir().join(format!("wackamole-package-check-{}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    let guard = PurgeOnDrop;
    let result = exercise(deb, &tmp);
    drop(guard);
    let _ = fs::remove_dir_all(&tmp);
    result?;
    if let Some(status) = dpkg_status() {
        bail!("after the check dpkg still knows {NAME}: {status}");
    }
    Ok(())
}

fn field(deb: &Path, name: &str) -> Result<String> {
    Ok(
        capture(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))?
            .trim()
            .to_string(),
    )
}

fn exercise(deb: &Path, tmp: &Path) -> Result<()> {
    let depends = field(deb, "Depends")?;
    for lib in ["libc6", "libcpg4"] {
        if !depends.contains(lib) {
            bail!("Depends `{depends}` lacks {lib}");
        }
    }
    if field(deb, "Recommends")? != "corosync" {
        bail!("Recommends is not `corosync`");
    }
    let files: Vec<PathBuf> = files_under(&root().join("target/debian/stage"))?
        .into_iter()
        .filter(|f| !f.starts_with("DEBIAN"))
        .map(|f| Path::new("/").join(f))
        .collect();

    run(Command::new("dpkg")
        .arg("-i")
        .arg(deb)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("dpkg -i failed (missing dependencies? `cargo xtask setup` installs corosync)")?;
    for f in &files {
        if !f.is_file() {
            bail!("{} is in the package but not installed", f.display());
        }
    }
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants/wackamole.service");
    if wants.exists() {
        bail!("installing enabled the unit ({} exists)", wants.display());
    }
    if read(Path::new(CONFFILE))? != read(&root().join("conf/wackamole.toml"))? {
        bail!("{CONFFILE} differs from conf/wackamole.toml");
    }

    let version = capture(Command::new("/usr/sbin/wackamole").arg("--version"))?;
    if version.trim() != format!("{NAME} {VERSION}") {
        bail!("`wackamole --version` printed {version:?}");
    }
    eprintln!("xtask: check: {}", version.trim());

    // The sample names eth0 and eth1; point it at an interface every host has.
    let sample = String::from_utf8(read(Path::new(CONFFILE))?)?;
    let local = sample
        .replace("\"eth0:", "\"lo:")
        .replace("\"eth1:", "\"lo:");
    let cfg = tmp.join("wackamole.toml");
    fs::write(&cfg, local)?;
    let ok = capture(
        Command::new("/usr/sbin/wackamole")
            .arg("check-config")
            .arg(&cfg),
    )?;
    if !ok.contains(": OK (3 VIFs") {
        bail!("check-config printed {ok:?}");
    }
    eprintln!("xtask: check: {}", ok.trim());

    for (page, must) in [
        ("/usr/share/man/man8/wackamole.8.gz", "wackamole ctl move"),
        (
            "/usr/share/man/man5/wackamole.toml.5.gz",
            "notify.targets.range",
        ),
    ] {
        let mut cmd = Command::new("man");
        cmd.args(["--warnings", "-l", page]).env("MANWIDTH", "80");
        let out = cmd
            .output()
            .with_context(|| format!("could not start `{}` (package man-db)", show(&cmd)))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !warnings.trim().is_empty() {
            bail!(
                "`{}` failed ({}): {}",
                show(&cmd),
                out.status,
                warnings.trim()
            );
        }
        if !text.contains("NAME") || !text.contains(must) {
            bail!("`{}` rendered no NAME or no `{must}`:\n{text}", show(&cmd));
        }
        eprintln!(
            "xtask: check: man -l {page}: {} lines",
            text.lines().count()
        );
    }

    let mut verify = Command::new("systemd-analyze");
    verify.args(["verify", UNIT]);
    let out = verify
        .output()
        .with_context(|| format!("could not start `{}` (package systemd)", show(&verify)))?;
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // Other units on the machine may draw warnings; ours must draw none.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("wackamole")).collect();
    if !out.status.success() || !ours.is_empty() {
        bail!("`{}` ({}):\n{said}", show(&verify), out.status);
    }
    eprintln!("xtask: check: systemd-analyze verify {UNIT}: clean");

    run(Command::new("dpkg").args(["-r", NAME]))?;
    let status = dpkg_status().unwrap_or_default();
    if status != "deinstall ok config-files" {
        bail!("after dpkg -r the status is `{status}`, not config-files");
    }
    for f in &files {
        let conffile = f == Path::new(CONFFILE);
        if f.exists() != conffile {
            bail!(
                "after dpkg -r {} {}",
                f.display(),
                if conffile {
                    "is gone"
                } else {
                    "is still there"
                }
            );
        }
    }
    if Path::new("/usr/share/doc/wackamole").exists() {
        bail!("after dpkg -r /usr/share/doc/wackamole is still there");
    }
    eprintln!("xtask: check: dpkg -r left only {CONFFILE}");

    run(Command::new("dpkg").args(["-P", NAME]))?;
    if let Some(status) = dpkg_status() {
        bail!("after dpkg -P dpkg still knows {NAME}: {status}");
    }
    for p in [CONFFILE, "/etc/wackamole"] {
        if Path::new(p).exists() {
            bail!("after dpkg -P {p} is still there");
        }
    }
    eprintln!("xtask: check: dpkg -P removed {CONFFILE} too");
    Ok(())
}
