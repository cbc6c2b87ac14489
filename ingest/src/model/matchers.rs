//! Label matchers as Prometheus defines them: `=`, `!=`, `=~`, `!~`, regexes fully anchored, and
//! a missing label matching the empty string.

use std::fmt;

use regex::Regex;

use super::labels::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// An invalid matcher (a regex that does not compile).
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?} for label {name:?}: {source}")]
pub struct MatcherError {
    pub name: String,
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

/// One label matcher. Regex matchers carry their compiled, anchored regex.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// Builds a matcher; regexes are anchored as Prometheus does (`^(?:re)$`).
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?s:{value})$")).map_err(|source| MatcherError {
                    name: name.clone(),
                    pattern: value.clone(),
                    source,
                })?)
            }
            _ => None,
        };
        Ok(Self { name, op, value, regex })
    }

    /// `name = value`; never fails.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), op: MatchOp::Equal, value: value.into(), regex: None }
    }

    /// Whether a label value (`""` when the label is absent) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a whole label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// Whether the empty value (an absent label) matches: such matchers cannot be answered from
    /// the postings of the label alone.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// True when every matcher accepts the labels.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops() {
        let l = Labels::from_pairs([("a", "foo"), ("b", "")]);
        assert!(Matcher::equal("a", "foo").matches_labels(&l));
        assert!(!Matcher::new(MatchOp::NotEqual, "a", "foo").unwrap().matches_labels(&l));
        assert!(Matcher::new(MatchOp::Regex, "a", "f.o").unwrap().matches_labels(&l));
        assert!(!Matcher::new(MatchOp::Regex, "a", "f").unwrap().matches_labels(&l), "anchored");
        assert!(Matcher::new(MatchOp::NotRegex, "a", "bar|baz").unwrap().matches_labels(&l));
        // A missing label is the empty string.
        assert!(Matcher::equal("missing", "").matches_labels(&l));
        assert!(Matcher::new(MatchOp::Regex, "missing", ".*").unwrap().matches_empty());
        assert!(!Matcher::new(MatchOp::Regex, "missing", ".+").unwrap().matches_empty());
    }

    #[test]
    fn bad_regex() {
        assert!(Matcher::new(MatchOp::Regex, "a", "(").is_err());
    }
}
