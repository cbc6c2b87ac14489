//! The text formats of `/ingest`: folded ("collapsed", Pyroscope's "groups") and `lines`.
//!
//! Both yield `(stack, count)` pairs where a stack is `;`-separated frames, root first. Frames
//! may contain spaces (`main.rs:9 - app::fib`), which is why the count is whatever follows the
//! *last* space of a folded line.

/// A folded line whose count is not a non-negative integer; the whole upload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("folded profile line {line}: invalid sample count {count:?}")]
pub struct FoldedError {
    /// 1-based line number.
    pub line: usize,
    pub count: String,
}

/// Lines without their line break (`\n`, or `\r\n` as hand-written files have).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Parses folded text: `frame1;frame2;leaf count` per line. Lines without a space carry no
/// sample and are skipped, as are lines whose stack part is empty.
pub fn parse_folded(text: &str) -> Result<Vec<(&str, u64)>, FoldedError> {
    let mut out = Vec::new();
    for (i, line) in lines(text).enumerate() {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let count: u64 = count.parse().map_err(|_| FoldedError { line: i + 1, count: count.to_string() })?;
        if !stack.is_empty() {
            out.push((stack, count));
        }
    }
    Ok(out)
}

/// Parses `lines` text: each non-empty line is one stack observed once; identical lines are
/// counted together. Pairs come in order of first appearance.
pub fn parse_lines(text: &str) -> Vec<(&str, u64)> {
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out: Vec<(&str, u64)> = Vec::new();
    for line in lines(text).filter(|l| !l.is_empty()) {
        match index.get(line) {
            Some(&i) => {
                if let Some(entry) = out.get_mut(i) {
                    entry.1 = entry.1.saturating_add(1);
                }
            }
            None => {
                index.insert(line, out.len());
                out.push((line, 1));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_after_the_last_space() {
        let text = "main.rs:9 - app::main;main.rs:10 - app::fib 42\nfoo;bar 1\n";
        assert_eq!(
            parse_folded(text).unwrap(),
            vec![("main.rs:9 - app::main;main.rs:10 - app::fib", 42), ("foo;bar", 1)]
        );
    }

    #[test]
    fn blank_and_spaceless_lines_are_skipped() {
        let text = "\n\nno_space_here\na;b 3\r\n\r\n c 0\n 7\n";
        // " c 0" has stack " c" (leading space kept); " 7" has an empty stack.
        assert_eq!(parse_folded(text).unwrap(), vec![("a;b", 3), (" c", 0)]);
    }

    #[test]
    fn bad_counts_are_errors() {
        assert_eq!(parse_folded("a;b 1\na;b x\n").unwrap_err(), FoldedError { line: 2, count: "x".into() });
        // A trailing space leaves an empty count.
        assert_eq!(parse_folded("a;b \n").unwrap_err().count, "");
        assert!(parse_folded("a -1").is_err());
        assert!(parse_folded("a 1.5").is_err());
        assert!(parse_folded("a 99999999999999999999999").is_err());
        assert_eq!(
            parse_folded("a;b 1\nc x").unwrap_err().to_string(),
            "folded profile line 2: invalid sample count \"x\""
        );
    }

    #[test]
    fn lines_counts_identical_lines() {
        let text = "a;b\na;c\na;b\r\n\na;b\n";
        assert_eq!(parse_lines(text), vec![("a;b", 3), ("a;c", 1)]);
        assert!(parse_lines("").is_empty());
    }
}
