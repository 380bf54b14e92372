//! `wackamole generate`: the package's man pages and shell completions.
//!
//! `wackamole(8)` comes from the CLI definition (clap_mangen for the frame,
//! one subsection per subcommand); `wackamole.toml(5)` from the comments of
//! the sample configuration, which is compiled in, so the page and the
//! sample cannot drift; completions from clap_complete.

use clap::Command;
use clap_complete::Shell;
use roff::{bold, italic, roman, Roff};
use std::io;
use std::path::{Path, PathBuf};

/// The commented sample configuration (`conf/wackamole.toml`), the single
/// source of `wackamole.toml(5)`.
pub const SAMPLE_CONFIG: &str = include_str!("../../../conf/wackamole.toml");

/// One documented key of the sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDoc {
    /// Dotted path: `node`, `engine.kind`, `vif.name`, `notify.targets.range`.
    pub path: String,
    /// The value written in the sample, when it fits on one line.
    pub example: Option<String>,
    /// Set in the sample (false: shown commented out).
    pub set: bool,
    /// Description paragraphs.
    pub text: Vec<String>,
    /// Keys of the inline tables this key holds (`notify.targets`).
    pub fields: Vec<KeyDoc>,
}

/// A key or a free comment block, in sample order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Key(KeyDoc),
    /// Comment lines not attached to a key; indented lines are examples.
    Text(Vec<String>),
}

/// The top level or one `[table]` / `[[array]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDoc {
    /// Empty for the top level, else the table's dotted name.
    pub name: String,
    /// Written `[[name]]`: one table per element.
    pub array: bool,
    /// Paragraphs of the comment right above the header.
    pub text: Vec<String>,
    pub items: Vec<Item>,
}

/// The sample's documentation: the header comment, then each table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleDoc {
    pub intro: Vec<String>,
    pub tables: Vec<TableDoc>,
}

impl SampleDoc {
    /// Every documented key, inline-table fields included, in sample order.
    pub fn keys(&self) -> Vec<&KeyDoc> {
        fn walk<'a>(k: &'a KeyDoc, out: &mut Vec<&'a KeyDoc>) {
            out.push(k);
            for f in &k.fields {
                walk(f, out);
            }
        }
        let mut out = Vec::new();
        for t in &self.tables {
            for i in &t.items {
                if let Item::Key(k) = i {
                    walk(k, &mut out);
                }
            }
        }
        out
    }
}

/// Comment lines to paragraphs: an empty comment line separates them.
fn paragraphs(lines: &[String]) -> Vec<String> {
    lines
        .split(|l| l.trim().is_empty())
        .filter(|p| !p.is_empty())
        .map(|p| p.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" "))
        .collect()
}

/// `key = value` in a comment (no indentation): a key shown commented out.
fn commented_key(c: &str) -> Option<(&str, &str)> {
    let (k, v) = c.split_once(" = ")?;
    (!k.is_empty() && k.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        .then_some((k, v.trim()))
}

/// Open `[`/`{` minus closed ones outside strings: > 0 while a value continues.
fn depth(s: &str) -> i32 {
    let (mut d, mut in_str, mut esc) = (0, false, false);
    for ch in s.chars() {
        match (in_str, ch) {
            (true, '\\') if !esc => {
                esc = true;
                continue;
            }
            (true, '"') if !esc => in_str = false,
            (false, '"') => in_str = true,
            (false, '#') => break,
            (false, '[' | '{') => d += 1,
            (false, ']' | '}') => d -= 1,
            _ => {}
        }
        esc = false;
    }
    d
}

/// Keys of the inline tables in an array value, in first-seen order.
fn inline_fields(value: &str) -> Vec<String> {
    let Ok(t) = toml::from_str::<toml::Table>(&format!("v = {value}")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    if let Some(toml::Value::Array(items)) = t.get("v") {
        for item in items {
            if let toml::Value::Table(tab) = item {
                for k in tab.keys() {
                    if !out.contains(k) {
                        out.push(k.clone());
                    }
                }
            }
        }
    }
    out
}

fn add_key(table: &mut TableDoc, key: &str, value: &str, set: bool, comment: Vec<String>) {
    let path = if table.name.is_empty() {
        key.to_string()
    } else {
        format!("{}.{key}", table.name)
    };
    // A repeated `[[vif]]` shows the key again: the first description stays.
    if table
        .items
        .iter()
        .any(|i| matches!(i, Item::Key(k) if k.path == path))
    {
        return;
    }
    let fields = inline_fields(value);
    // `field: text` lines of the comment describe the inline tables' keys.
    let mut own = Vec::new();
    let mut field_docs: Vec<(String, Vec<String>)> = Vec::new();
    for line in comment {
        let starts = line
            .split_once(": ")
            .filter(|(f, _)| fields.iter().any(|x| x == f));
        match (starts, field_docs.last_mut()) {
            (Some((f, rest)), _) => field_docs.push((f.to_string(), vec![rest.to_string()])),
            (None, Some((_, doc))) => doc.push(line),
            (None, None) => own.push(line),
        }
    }
    let fields = fields
        .into_iter()
        .map(|f| KeyDoc {
            path: format!("{path}.{f}"),
            example: None,
            set,
            text: field_docs
                .iter()
                .find(|(n, _)| *n == f)
                .map(|(_, d)| paragraphs(d))
                .unwrap_or_default(),
            fields: Vec::new(),
        })
        .collect();
    table.items.push(Item::Key(KeyDoc {
        path,
        example: (!value.contains('\n')).then(|| value.to_string()),
        set,
        text: paragraphs(&own),
        fields,
    }));
}

/// Reads the sample's structure: the header comment (up to the first blank
/// line), then per table the comment above its header, each key (set or
/// commented out as `# key = value`) with the comment right above it, and
/// free comment blocks (followed by a blank line).
pub fn parse_sample(text: &str) -> Result<SampleDoc, String> {
    let mut doc = SampleDoc {
        intro: Vec::new(),
        tables: vec![TableDoc {
            name: String::new(),
            array: false,
            text: Vec::new(),
            items: Vec::new(),
        }],
    };
    let mut cur = 0;
    let mut block: Vec<String> = Vec::new();
    let mut started = false;
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let t = line.trim_end();
        if t.is_empty() {
            if !block.is_empty() {
                if started {
                    doc.tables[cur]
                        .items
                        .push(Item::Text(std::mem::take(&mut block)));
                } else {
                    doc.intro = paragraphs(&block);
                    block.clear();
                    started = true;
                }
            }
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            let c = c.strip_prefix(' ').unwrap_or(c);
            match commented_key(c) {
                Some((k, v)) => {
                    started = true;
                    add_key(
                        &mut doc.tables[cur],
                        k,
                        v,
                        false,
                        std::mem::take(&mut block),
                    );
                }
                None => block.push(c.to_string()),
            }
            continue;
        }
        started = true;
        if t.starts_with('[') {
            let name = t.trim_matches(['[', ']']).trim().to_string();
            cur = match doc.tables.iter().position(|x| x.name == name) {
                Some(i) => i,
                None => {
                    doc.tables.push(TableDoc {
                        name,
                        array: t.starts_with("[["),
                        text: paragraphs(&block),
                        items: Vec::new(),
                    });
                    doc.tables.len() - 1
                }
            };
            block.clear();
            continue;
        }
        let mut stmt = t.to_string();
        while depth(&stmt) > 0 {
            let (_, more) = lines
                .next()
                .ok_or_else(|| format!("line {}: value not closed", n + 1))?;
            stmt.push('\n');
            stmt.push_str(more);
        }
        let (k, v) = stmt
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected `key = value`", n + 1))?;
        add_key(
            &mut doc.tables[cur],
            k.trim(),
            v.trim(),
            true,
            std::mem::take(&mut block),
        );
    }
    Ok(doc)
}

fn para(roff: &mut Roff, text: &[String]) {
    for (i, p) in text.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(p.as_str())]);
    }
}

fn key_entry(roff: &mut Roff, k: &KeyDoc) {
    roff.control("TP", []);
    let mut tag = vec![bold(k.path.as_str())];
    if let Some(ex) = &k.example {
        tag.push(roman(" = "));
        tag.push(italic(ex.as_str()));
    }
    roff.text(tag);
    para(roff, &k.text);
    if !k.set {
        roff.text([roman("(Not set in the sample.)")]);
    }
    if !k.fields.is_empty() {
        roff.control("RS", []);
        for f in &k.fields {
            key_entry(roff, f);
        }
        roff.control("RE", []);
    }
}

fn free_text(roff: &mut Roff, lines: &[String]) {
    roff.control("PP", []);
    let mut in_example = false;
    for l in lines {
        let example = l.starts_with("  ");
        if example != in_example {
            roff.control(if example { "nf" } else { "fi" }, []);
            roff.control(if example { "RS" } else { "RE" }, []);
            in_example = example;
        }
        roff.text([roman(if example { l.trim() } else { l.as_str() })]);
    }
    if in_example {
        roff.control("fi", []).control("RE", []);
    }
}

/// `wackamole.toml(5)` from the sample's comments.
pub fn config_page(version: &str) -> Result<String, String> {
    let doc = parse_sample(SAMPLE_CONFIG)?;
    let mut r = Roff::new();
    let source = format!("wackamole {version}");
    let date = man_date();
    r.control(
        "TH",
        ["WACKAMOLE.TOML", "5", &date, &source, "File Formats"],
    );
    r.control("SH", ["NAME"]);
    r.text([roman(
        "wackamole.toml - configuration of the wackamole agent",
    )]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([bold("/etc/wackamole/wackamole.toml")]);
    r.control("SH", ["DESCRIPTION"]);
    para(&mut r, &doc.intro);
    r.control("SH", ["KEYS"]);
    for t in &doc.tables {
        let title = match (t.name.as_str(), t.array) {
            ("", _) => "Top level".to_string(),
            (n, true) => format!("[[{n}]]"),
            (n, false) => format!("[{n}]"),
        };
        r.control("SS", [title.as_str()]);
        para(&mut r, &t.text);
        for i in &t.items {
            match i {
                Item::Key(k) => key_entry(&mut r, k),
                Item::Text(lines) => free_text(&mut r, lines),
            }
        }
    }
    r.control("SH", ["EXAMPLE"]);
    r.text([roman(
        "The sample installed as /etc/wackamole/wackamole.toml, without its comments:",
    )]);
    r.control("PP", []).control("nf", []).control("RS", []);
    let mut blank = true;
    for l in SAMPLE_CONFIG.lines() {
        let t = l.trim_end();
        if t.starts_with('#') {
            continue;
        }
        if t.is_empty() {
            if !blank {
                r.text([roman("")]);
            }
            blank = true;
            continue;
        }
        blank = false;
        r.text([roman(t)]);
    }
    r.control("RE", []).control("fi", []);
    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([bold("/etc/wackamole/wackamole.toml")]);
    r.text([roman(
        "The agent's configuration (a conffile of the Debian package).",
    )]);
    r.control("TP", []);
    r.text([bold("/usr/share/doc/wackamole/examples/")]);
    r.text([roman(
        "Corosync and Spread profiles with fast failure detection, a Grafana dashboard.",
    )]);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman("wackamole(8), corosync.conf(5), systemd.service(5)")]);
    Ok(r.render())
}

/// What the agent does, after clap's one-line description.
const DESCRIPTION: &[&str] = &[
    "wackamole run is the agent: with the other nodes of the cluster it learns an \
     agreed view of who is alive from Corosync 3 (CPG) or a Spread 4 daemon, and \
     all compute the same allocation of the virtual interfaces (VIFs, groups of \
     virtual IPs) so that each is held by exactly one connected node. An XDP \
     program answers ARP for the VIPs this node holds, silences released ones at \
     once and fences the node by itself when the agent stops renewing its lease.",
    "The agent runs as root, normally from the systemd unit wackamole.service, \
     which is not enabled when the package is installed: write \
     /etc/wackamole/wackamole.toml (see wackamole.toml(5)), check it with \
     wackamole check-config, then run systemctl enable --now wackamole.",
    "The other commands are the operator's: check-config validates a \
     configuration, import-conf translates an old wackamole.conf, and ctl talks \
     to the running agent through its control socket.",
];

/// The pages' date: SOURCE_DATE_EPOCH (reproducible package builds) or now.
fn man_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Roff text without the apostrophe preamble every render starts with
/// (the page keeps the one from its title) and without `.SH` headings when
/// the text goes inside a subsection.
fn body(text: &[u8], keep_sh: bool) -> String {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .filter(|l| keep_sh || !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The `.SS` subsection of each subcommand, depth first.
fn command_sections(out: &mut String, cmd: &Command) -> io::Result<()> {
    // clap's own `help` subcommand is not worth a section.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = sub.get_bin_name().unwrap_or(sub.get_name());
        let mut r = Roff::new();
        r.control("SS", [name]);
        out.push_str(&body(r.render().as_bytes(), false));
        // clap_mangen renders the synopsis and the options.
        let man = clap_mangen::Man::new(sub.clone());
        let mut synopsis = Vec::new();
        man.render_synopsis_section(&mut synopsis)?;
        out.push_str(&body(&synopsis, false));
        let mut r = Roff::new();
        if let Some(a) = sub.get_long_about().or(sub.get_about()) {
            r.control("PP", []);
            r.text([roman(a.to_string())]);
        }
        out.push_str(&body(r.render().as_bytes(), false));
        // Options, then positional arguments.
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            let mut options = Vec::new();
            man.render_options_section(&mut options)?;
            out.push_str(&body(&options, false));
        }
        command_sections(out, sub)?;
    }
    Ok(())
}

/// `wackamole(8)`: clap_mangen's page for the command, then one subsection
/// per subcommand (synopsis, description, arguments, options), exit status,
/// signals and files.
pub fn main_page(mut cmd: Command) -> io::Result<String> {
    // Building sets every subcommand's full name (`wackamole ctl move`).
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .date(man_date())
        .manual("System Administration");
    let mut head = Vec::new();
    man.render_title(&mut head)?;
    man.render_name_section(&mut head)?;
    man.render_synopsis_section(&mut head)?;
    man.render_description_section(&mut head)?;
    let mut r = Roff::new();
    for p in DESCRIPTION {
        r.control("PP", []).text([roman(*p)]);
    }
    head.extend_from_slice(body(r.render().as_bytes(), true).as_bytes());
    man.render_options_section(&mut head)?;
    // The title keeps its preamble: the page needs it once.
    let mut out = String::from_utf8_lossy(&head[..]).into_owned();
    let first_title = out.find(".TH").unwrap_or(0);
    let (pre, rest) = out.split_at(first_title);
    out = format!("{pre}{}", body(rest.as_bytes(), true));
    out.push_str(".SH COMMANDS\n");
    command_sections(&mut out, &cmd)?;
    let mut tail = Roff::new();
    tail.control("SH", ["EXIT STATUS"]);
    tail.text([roman(
        "0 success; 1 runtime failure (or the agent refused a ctl request); \
         2 bad configuration or usage.",
    )]);
    tail.control("SH", ["SIGNALS"]);
    tail.text([roman(
        "SIGHUP reloads what can change safely (notify targets, hooks, balance, \
         announcements, log level) and refuses the rest with a log line. \
         SIGTERM releases every VIF (silence first, then addresses), leaves the \
         group and unpins the data plane.",
    )]);
    tail.control("SH", ["FILES"]);
    for (f, what) in [
        (
            "/etc/wackamole/wackamole.toml",
            "The configuration, see wackamole.toml(5).",
        ),
        (
            "/run/wackamole/control.sock",
            "The control socket of wackamole ctl (root only).",
        ),
        (
            "/sys/fs/bpf/wackamole/",
            "Pinned XDP maps and links (the fencing lease outlives the agent).",
        ),
        (
            "/lib/systemd/system/wackamole.service",
            "The systemd unit (Type=notify, watchdog, reload = SIGHUP).",
        ),
    ] {
        tail.control("TP", []);
        tail.text([bold(f)]);
        tail.text([roman(what)]);
    }
    tail.control("SH", ["SEE ALSO"]);
    tail.text([roman("wackamole.toml(5), corosync(8), systemctl(1)")]);
    out.push_str(&body(tail.render().as_bytes(), true));
    let mut version = Vec::new();
    man.render_version_section(&mut version)?;
    out.push_str(&body(&version, true));
    Ok(out)
}

/// Writes `wackamole.8` and `wackamole.toml.5` into `dir`.
pub fn write_man_pages(cmd: Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let version = cmd.get_version().unwrap_or_default().to_string();
    std::fs::create_dir_all(dir)?;
    let main = dir.join("wackamole.8");
    std::fs::write(&main, main_page(cmd)?)?;
    let config = dir.join("wackamole.toml.5");
    let page = config_page(&version)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("sample config: {e}")))?;
    std::fs::write(&config, page)?;
    Ok(vec![main, config])
}

/// The file name each shell looks for in its completion directory.
pub fn completion_file_name(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Bash => bin.to_string(),
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        Shell::Elvish => format!("{bin}.elv"),
        Shell::PowerShell => format!("_{bin}.ps1"),
        _ => bin.to_string(),
    }
}

/// Writes the `wackamole` binary's completion script for `shell` into
/// `dir`. Hidden subcommands are left out (clap_complete would offer them).
pub fn write_completions(cmd: Command, shell: Shell, dir: &Path) -> io::Result<PathBuf> {
    const BIN: &str = "wackamole";
    let visible: Vec<Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    // A new root, as clap cannot remove a subcommand; the version is this
    // crate's, which is the binary's.
    let mut root = Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .about(cmd.get_about().cloned().unwrap_or_default())
        .args(cmd.get_arguments().cloned())
        .subcommand_required(cmd.is_subcommand_required_set())
        .subcommands(visible);
    std::fs::create_dir_all(dir)?;
    let path = dir.join(completion_file_name(shell, BIN));
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut root, BIN, &mut buf);
    std::fs::write(&path, buf)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn commented_keys_and_depth() {
        assert_eq!(commented_key("on_up = \"/x\""), Some(("on_up", "\"/x\"")));
        assert_eq!(commented_key("  kind = \"spread\""), None);
        assert_eq!(commented_key("on_up / on_down: before"), None);
        assert_eq!(depth("targets = ["), 1);
        assert_eq!(depth("a = \"[\" # ["), 0);
        assert_eq!(depth("t = [{ a = 1 }]"), 0);
    }
}
