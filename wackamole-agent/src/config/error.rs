//! Configuration errors that say where: `FILE:LINE: field `x.y`: what is wrong`.

use std::fmt;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// File name as given to the parser.
    pub file: String,
    /// 1-based line, when the problem has a place in the file (a missing
    /// value or an I/O error has none).
    pub line: Option<usize>,
    /// Dotted field path (`vif[1].addresses[0]`, `balance.interval`); empty
    /// for problems with the file as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", file_label(&self.file))?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a configuration (never empty). Displays one
/// [`Issue`] per line, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, sorted by line.
    pub issues: Vec<Issue>,
}

impl ConfigError {
    /// An error with a single issue.
    pub fn single(issue: Issue) -> Self {
        ConfigError {
            issues: vec![issue],
        }
    }

    /// The first issue with this field path, if any.
    pub fn for_field(&self, field: &str) -> Option<&Issue> {
        self.issues.iter().find(|i| i.field == field)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, issue) in self.issues.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A file name as messages show it: as given, unless it holds control
/// characters (a crafted name must not drive the terminal or end a line),
/// then quoted and escaped.
pub fn file_label(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().any(char::is_control) {
        format!("{name:?}").into()
    } else {
        name.into()
    }
}

/// 1-based line of a byte offset in `text` (offsets past the end count as
/// the last line). Scans the text: for one lookup; [`LineIndex`] for many.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Line starts of a text, so that each lookup is a binary search: validation
/// asks for the line of every address, and a scan per lookup made a config
/// with 20,000 VIFs take seconds (quadratic in the file size).
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset just after each `\n`.
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    /// Indexes `text` (one pass).
    pub fn new(text: &str) -> Self {
        let starts = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// 1-based line of a byte offset, as [`line_of`] counts it.
    pub fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.len);
        // Lines before `offset` = newlines at positions < offset.
        self.starts.partition_point(|&s| s <= offset) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_agrees_with_line_of() {
        for text in ["", "a", "\n", "a\nb", "a\n\nb\n", "\r\n\r\nx", "é\nü"] {
            let idx = LineIndex::new(text);
            for off in 0..=text.len() + 2 {
                assert_eq!(idx.line(off), line_of(text, off), "{text:?} at {off}");
            }
        }
    }
}
