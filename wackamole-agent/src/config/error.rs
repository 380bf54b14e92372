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
        write!(f, "{}", self.file)?;
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

/// 1-based line of a byte offset in `text` (offsets past the end count as
/// the last line).
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
