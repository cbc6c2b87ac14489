//! Prometheus metric-selector syntax (PromQL `ParseMetricSelector`), which Pyroscope uses for
//! `label_selector`, `matchers` and the legacy `query` parameter. Clients (Grafana, the Drilldown
//! app, profilecli) generate these strings, so accepting exactly what PromQL accepts — trailing
//! commas, quoted UTF-8 names, Go string escapes — matters more than a tidy grammar.

use super::labels::METRIC_NAME;
use super::matchers::{MatchOp, Matcher, MatcherError};

/// Why a selector was rejected. Every variant carries the byte offset of the offending token so
/// an HTTP 400 can point the user at the exact spot in a long, generated selector.
#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    /// Pyroscope answers an empty selector with 400 rather than "select everything"; `{}` is the
    /// explicit way to ask for everything.
    #[error("empty selector at byte {offset}: expected a metric name or '{{'")]
    Empty { offset: usize },
    #[error("unexpected {found} at byte {offset}: expected {expected}")]
    Unexpected { offset: usize, found: String, expected: &'static str },
    #[error("unterminated quoted string starting at byte {offset}")]
    UnterminatedString { offset: usize },
    #[error("invalid escape sequence {sequence:?} at byte {offset}: {reason}")]
    InvalidEscape { offset: usize, sequence: String, reason: &'static str },
    /// `\x` and octal escapes produce raw bytes (as in Go); the result must still be UTF-8.
    #[error("quoted string starting at byte {offset} is not valid UTF-8 once unescaped")]
    InvalidUtf8 { offset: usize },
    #[error("empty {what} at byte {offset}")]
    EmptyName { offset: usize, what: &'static str },
    #[error("metric name must not be set twice: {first:?} and {second:?} (second at byte {offset})")]
    MetricNameTwice { offset: usize, first: String, second: String },
    #[error("invalid matcher value at byte {offset}: {source}")]
    InvalidMatcher {
        offset: usize,
        #[source]
        source: MatcherError,
    },
}

/// Parses `name{a="x", b!="y", c=~"re", d!~"re",}`; the metric name part becomes a `__name__`
/// matcher.
///
/// Matchers come back in source order; a metric name written before the braces is appended last,
/// as PromQL does, so callers that print the list round-trip Prometheus' output. A quoted metric
/// name inside the braces (`{"my.metric"}`) keeps its position.
pub fn parse_selector(input: &str) -> Result<Vec<Matcher>, SelectorError> {
    Parser { src: input, pos: 0 }.selector()
}

/// The legacy render `query`: `<profile type id>{selectors}`, where the metric-name part may
/// contain colons (e.g. `process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="x"}`).
/// Returns (profile type id, matchers); the id is "" when absent.
///
/// Mirrors Pyroscope's `parseQuery`: every `__name__` matcher is removed from the list and the
/// value of the last one is the id whatever its operator, so `{__name__="<id>", a="b"}` is the
/// same query as `<id>{a="b"}`. Validating the id is left to the profile-type parser.
pub fn parse_query(input: &str) -> Result<(String, Vec<Matcher>), SelectorError> {
    let parsed = parse_selector(input)?;
    let mut id = String::new();
    let mut matchers = Vec::with_capacity(parsed.len());
    for m in parsed {
        if m.name == METRIC_NAME {
            id = m.value;
        } else {
            matchers.push(m);
        }
    }
    Ok((id, matchers))
}

/// A matcher with where it started, kept until the metric-name checks have run.
struct Entry {
    offset: usize,
    matcher: Matcher,
    /// A bare quoted string inside braces: a metric name, not an explicit `__name__` matcher.
    is_metric_name: bool,
}

/// Hand-written recursive descent over the input. Every token boundary is an ASCII byte or the
/// end of a whole `char`, so `pos` always sits on a char boundary and slicing cannot panic;
/// lookups still go through `get` so a mistake degrades into an error, not a crash.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn selector(mut self) -> Result<Vec<Matcher>, SelectorError> {
        self.skip_ws();
        if self.peek().is_none() {
            return Err(SelectorError::Empty { offset: self.pos });
        }

        let prefix = match self.peek() {
            Some(c) if is_metric_start(c) => {
                let offset = self.pos;
                Some((self.take_while(is_metric_char).to_owned(), offset))
            }
            _ => None,
        };
        self.skip_ws();

        let mut entries = Vec::new();
        match self.peek() {
            Some('{') => self.braces(&mut entries)?,
            _ if prefix.is_some() => {}
            _ => return Err(self.unexpected("a metric name or '{'")),
        }
        self.skip_ws();
        if self.peek().is_some() {
            return Err(self.unexpected("end of input"));
        }

        check_metric_name_once(prefix.as_ref(), &entries)?;
        let mut out: Vec<Matcher> = entries.into_iter().map(|e| e.matcher).collect();
        if let Some((name, _)) = prefix {
            out.push(Matcher::equal(METRIC_NAME, name));
        }
        Ok(out)
    }

    /// `{` [matcher {`,` matcher}] [`,`] `}`; the caller has checked the `{`.
    fn braces(&mut self, entries: &mut Vec<Entry>) -> Result<(), SelectorError> {
        self.pos += 1;
        loop {
            self.skip_ws();
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => entries.push(self.matcher()?),
                None => return Err(self.unexpected("a label matcher or '}' to close the '{'")),
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err(self.unexpected("',' or '}' to close the '{'")),
                _ => return Err(self.unexpected("',' or '}'")),
            }
        }
    }

    /// `name op value`, or a lone quoted string, which PromQL reads as the metric name so that
    /// UTF-8 metric names can be written at all.
    fn matcher(&mut self) -> Result<Entry, SelectorError> {
        let offset = self.pos;
        let (name, quoted) = match self.peek() {
            Some(q @ ('"' | '\'' | '`')) => (self.string(q)?, true),
            Some(c) if is_label_start(c) => (self.take_while(is_label_char).to_owned(), false),
            _ => return Err(self.unexpected("a label name")),
        };
        self.skip_ws();

        let Some(op) = self.op() else {
            if !quoted {
                return Err(self.unexpected("a match operator (=, !=, =~, !~)"));
            }
            if name.is_empty() {
                return Err(SelectorError::EmptyName { offset, what: "metric name" });
            }
            return Ok(Entry { offset, matcher: Matcher::equal(METRIC_NAME, name), is_metric_name: true });
        };
        if name.is_empty() {
            return Err(SelectorError::EmptyName { offset, what: "label name" });
        }

        self.skip_ws();
        let value_offset = self.pos;
        let value = match self.peek() {
            Some(q @ ('"' | '\'' | '`')) => self.string(q)?,
            _ => return Err(self.unexpected("a quoted label value")),
        };
        let matcher = Matcher::new(op, name, value)
            .map_err(|source| SelectorError::InvalidMatcher { offset: value_offset, source })?;
        Ok(Entry { offset, matcher, is_metric_name: false })
    }

    fn op(&mut self) -> Option<MatchOp> {
        let rest = self.rest().as_bytes();
        let (op, len) = match rest {
            [b'=', b'~', ..] => (MatchOp::Regex, 2),
            [b'!', b'=', ..] => (MatchOp::NotEqual, 2),
            [b'!', b'~', ..] => (MatchOp::NotRegex, 2),
            [b'=', ..] => (MatchOp::Equal, 1),
            _ => return None,
        };
        self.pos += len;
        Some(op)
    }

    /// A quoted string starting at `pos` with quote `q`. Backticks are raw; `"` and `'` follow
    /// Go's rules, which is what PromQL's lexer and `strutil.Unquote` implement.
    fn string(&mut self, q: char) -> Result<String, SelectorError> {
        let start = self.pos;
        self.pos += 1; // every quote character is one byte
        if q == '`' {
            let Some(len) = self.rest().find('`') else {
                self.pos = self.src.len();
                return Err(SelectorError::UnterminatedString { offset: start });
            };
            let s = self.rest().get(..len).unwrap_or_default().to_owned();
            self.pos += len + 1;
            return Ok(s);
        }

        // Bytes, not chars: `\xHH` and octal escapes emit single bytes that only together form
        // a UTF-8 sequence (`"\xc3\xa9"` is "é" in Go and PromQL).
        let mut buf = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(SelectorError::UnterminatedString { offset: start });
            };
            // PromQL's lexer ends a quoted string at a newline; only raw strings span lines.
            if c == '\n' {
                return Err(SelectorError::UnterminatedString { offset: start });
            }
            self.pos += c.len_utf8();
            if c == q {
                break;
            }
            if c == '\\' {
                self.escape(q, &mut buf, start)?;
            } else {
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        }
        String::from_utf8(buf).map_err(|_| SelectorError::InvalidUtf8 { offset: start })
    }

    /// One escape sequence; `pos` is just past the backslash.
    fn escape(&mut self, q: char, buf: &mut Vec<u8>, string_start: usize) -> Result<(), SelectorError> {
        let esc_start = self.pos - 1;
        let Some(c) = self.peek() else {
            return Err(SelectorError::UnterminatedString { offset: string_start });
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            c if c == q => Some(c as u8),
            _ => None,
        };
        if let Some(b) = simple {
            buf.push(b);
            return Ok(());
        }
        match c {
            // Go only lets a string escape its own delimiter: `"\'"` is a syntax error.
            '"' | '\'' => Err(self.bad_escape(esc_start, "only the enclosing quote may be escaped")),
            'x' => {
                let v = self.digits(esc_start, 2, 16, "\\x needs exactly two hex digits")?;
                buf.push(v as u8);
                Ok(())
            }
            '0'..='7' => {
                let rest = self.digits(esc_start, 2, 8, "octal escapes need exactly three digits")?;
                let v = (c as u32 - '0' as u32) << 6 | rest;
                let b = u8::try_from(v).map_err(|_| self.bad_escape(esc_start, "octal escape value is above 255"))?;
                buf.push(b);
                Ok(())
            }
            'u' | 'U' => {
                let (n, reason) = if c == 'u' {
                    (4, "\\u needs exactly four hex digits")
                } else {
                    (8, "\\U needs exactly eight hex digits")
                };
                let v = self.digits(esc_start, n, 16, reason)?;
                // Rejects surrogates and values past U+10FFFF, as PromQL's lexer does.
                let ch = char::from_u32(v)
                    .ok_or_else(|| self.bad_escape(esc_start, "escape sequence is an invalid Unicode code point"))?;
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                Ok(())
            }
            _ => Err(self.bad_escape(esc_start, "unknown escape sequence")),
        }
    }

    /// Exactly `n` digits of `radix`. Digits are ASCII, so stepping one byte at a time keeps `pos`
    /// on a char boundary; on failure `pos` stays before the offending char.
    fn digits(&mut self, esc_start: usize, n: usize, radix: u32, reason: &'static str) -> Result<u32, SelectorError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            let d = self.rest().as_bytes().first().and_then(|&b| char::from(b).to_digit(radix));
            let Some(d) = d else {
                return Err(self.bad_escape(esc_start, reason));
            };
            v = v * radix + d;
            self.pos += 1;
        }
        Ok(v)
    }

    fn bad_escape(&self, offset: usize, reason: &'static str) -> SelectorError {
        let sequence = self.src.get(offset..self.pos).unwrap_or_default().to_owned();
        SelectorError::InvalidEscape { offset, sequence, reason }
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        let found = match self.peek() {
            Some(c) => format!("{c:?}"),
            None => "end of input".to_owned(),
        };
        SelectorError::Unexpected { offset: self.pos, found, expected }
    }

    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// PromQL's notion of whitespace; other Unicode spaces are garbage to it, so they are to us.
    fn skip_ws(&mut self) {
        self.take_while(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &str {
        let start = self.pos;
        let len = self.rest().find(|c: char| !pred(c)).unwrap_or(self.rest().len());
        self.pos += len;
        self.src.get(start..self.pos).unwrap_or_default()
    }
}

/// A metric name (the prefix or a bare quoted string) may appear once and may not be combined
/// with an explicit `__name__` matcher: PromQL rejects that rather than silently AND-ing two
/// names. Several explicit `__name__` matchers alone are ordinary matchers and allowed.
fn check_metric_name_once(prefix: Option<&(String, usize)>, entries: &[Entry]) -> Result<(), SelectorError> {
    let mut names = prefix.map(|(name, offset)| (name.as_str(), *offset, true)).into_iter().chain(
        entries
            .iter()
            .filter(|e| e.matcher.name == METRIC_NAME)
            .map(|e| (e.matcher.value.as_str(), e.offset, e.is_metric_name)),
    );
    let Some(first) = names.next() else {
        return Ok(());
    };
    let mut saw_metric_name = first.2;
    for (value, offset, is_metric_name) in names {
        saw_metric_name |= is_metric_name;
        if saw_metric_name {
            return Err(SelectorError::MetricNameTwice { offset, first: first.0.to_owned(), second: value.to_owned() });
        }
    }
    Ok(())
}

fn is_metric_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, op: MatchOp, value: &str) -> (String, MatchOp, String) {
        (name.to_owned(), op, value.to_owned())
    }

    fn parsed(input: &str) -> Vec<(String, MatchOp, String)> {
        match parse_selector(input) {
            Ok(v) => v.into_iter().map(|x| (x.name, x.op, x.value)).collect(),
            Err(e) => panic!("{input:?} should parse: {e}"),
        }
    }

    fn single_value(input: &str) -> String {
        let v = parsed(input);
        assert_eq!(v.len(), 1, "{input:?}");
        v[0].2.clone()
    }

    use MatchOp::{Equal, NotEqual, NotRegex, Regex};

    #[test]
    fn plain() {
        assert_eq!(parsed(r#"{a="x"}"#), vec![m("a", Equal, "x")]);
        assert_eq!(parsed(r#"{service_name="my-app"}"#), vec![m("service_name", Equal, "my-app")]);
    }

    #[test]
    fn all_four_ops() {
        assert_eq!(
            parsed(r#"{a="x", b!="y", c=~"re.*", d!~"re"}"#),
            vec![m("a", Equal, "x"), m("b", NotEqual, "y"), m("c", Regex, "re.*"), m("d", NotRegex, "re")]
        );
    }

    #[test]
    fn empty_braces_mean_everything() {
        assert!(parsed("{}").is_empty());
        assert!(parsed("  {  }  ").is_empty());
    }

    #[test]
    fn trailing_comma() {
        assert_eq!(parsed(r#"{a="b", }"#), vec![m("a", Equal, "b")]);
        assert_eq!(parsed(r#"{a="b",c="d",}"#), vec![m("a", Equal, "b"), m("c", Equal, "d")]);
    }

    #[test]
    fn whitespace_everywhere() {
        assert_eq!(
            parsed(" \t\n foo \r\n { a \t= \"x\" ,\n b\n!=\n'y' , c =~ `z` ,\t} \n"),
            vec![m("a", Equal, "x"), m("b", NotEqual, "y"), m("c", Regex, "z"), m(METRIC_NAME, Equal, "foo")]
        );
    }

    #[test]
    fn metric_name_prefix() {
        assert_eq!(parsed("foo"), vec![m(METRIC_NAME, Equal, "foo")]);
        assert_eq!(parsed("foo{}"), vec![m(METRIC_NAME, Equal, "foo")]);
        assert_eq!(parsed(r#"foo:bar_1{a="b"}"#), vec![m("a", Equal, "b"), m(METRIC_NAME, Equal, "foo:bar_1")]);
    }

    #[test]
    fn quoted_utf8_label_names() {
        assert_eq!(
            parsed(r#"{"service.name"="x", 'k8s.pod'!~"p.*", `raw.name`="y"}"#),
            vec![m("service.name", Equal, "x"), m("k8s.pod", NotRegex, "p.*"), m("raw.name", Equal, "y")]
        );
        assert_eq!(parsed(r#"{"名前"="値"}"#), vec![m("名前", Equal, "値")]);
    }

    #[test]
    fn quoted_metric_name_inside_braces() {
        assert_eq!(parsed(r#"{"my.metric", a="b"}"#), vec![m(METRIC_NAME, Equal, "my.metric"), m("a", Equal, "b")]);
        assert_eq!(parsed(r#"{a="b", "my.metric" }"#), vec![m("a", Equal, "b"), m(METRIC_NAME, Equal, "my.metric")]);
    }

    #[test]
    fn explicit_name_matchers_may_repeat() {
        assert_eq!(
            parsed(r#"{__name__="a", __name__!="b"}"#),
            vec![m(METRIC_NAME, Equal, "a"), m(METRIC_NAME, NotEqual, "b")]
        );
    }

    #[test]
    fn query_with_profile_type_prefix() {
        let (id, ms) = parse_query(r#"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="x"}"#).unwrap();
        assert_eq!(id, "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
        assert_eq!(ms, vec![Matcher::equal("service_name", "x")]);

        // Empty parts are legal in profile type ids (py-spy has no period type).
        let (id, ms) = parse_query("process_cpu:samples:count::milliseconds").unwrap();
        assert_eq!(id, "process_cpu:samples:count::milliseconds");
        assert!(ms.is_empty());

        let (id, ms) = parse_query(r#" memory:alloc_space:bytes:space:bytes { a = "b" , } "#).unwrap();
        assert_eq!(id, "memory:alloc_space:bytes:space:bytes");
        assert_eq!(ms, vec![Matcher::equal("a", "b")]);
    }

    #[test]
    fn query_without_profile_type() {
        let (id, ms) = parse_query(r#"{a="b"}"#).unwrap();
        assert_eq!(id, "");
        assert_eq!(ms, vec![Matcher::equal("a", "b")]);
        let (id, ms) = parse_query("{}").unwrap();
        assert_eq!(id, "");
        assert!(ms.is_empty());
    }

    #[test]
    fn query_takes_id_from_name_matcher() {
        let (id, ms) = parse_query(r#"{__name__="wall:wall:microseconds:wall:microseconds", a!="b"}"#).unwrap();
        assert_eq!(id, "wall:wall:microseconds:wall:microseconds");
        assert_eq!(ms, vec![Matcher::new(NotEqual, "a", "b").unwrap()]);
    }

    #[test]
    fn query_errors() {
        assert!(parse_query("").is_err());
        assert!(parse_query(r#"process_cpu:cpu:nanoseconds:cpu:nanoseconds{a="b"#).is_err());
        assert!(parse_query(r#"a:b{__name__="c"}"#).is_err());
    }

    #[test]
    fn simple_escapes() {
        assert_eq!(single_value(r#"{a="\a\b\f\n\r\t\v\\\""}"#), "\x07\x08\x0c\n\r\t\x0b\\\"");
        assert_eq!(single_value(r#"{a='it\'s'}"#), "it's");
        // The other quote needs no escape.
        assert_eq!(single_value(r#"{a="it's"}"#), "it's");
        assert_eq!(single_value(r#"{a='say "hi"'}"#), "say \"hi\"");
    }

    #[test]
    fn hex_escapes() {
        assert_eq!(single_value(r#"{a="\x41\x7a"}"#), "Az");
        // Byte escapes combine into one UTF-8 sequence, as in Go.
        assert_eq!(single_value(r#"{a="\xc3\xa9"}"#), "é");
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(single_value(r#"{a="\101\000\060x"}"#), "A\u{0}0x");
        assert_eq!(single_value(r#"{a="\303\251"}"#), "é");
    }

    #[test]
    fn unicode_escapes() {
        assert_eq!(single_value(r#"{a="\u00e9\u4e16"}"#), "é世");
        assert_eq!(single_value(r#"{a="\U0001F600"}"#), "😀");
    }

    #[test]
    fn backtick_raw_strings() {
        assert_eq!(single_value(r#"{a=`\d+\n"'`}"#), r#"\d+\n"'"#);
        assert_eq!(single_value("{a=`line1\nline2`}"), "line1\nline2");
        assert_eq!(single_value("{a=``}"), "");
    }

    #[test]
    fn unicode_values() {
        assert_eq!(
            parsed(r#"{a="héllo wörld 😀", b='日本'}"#),
            vec![m("a", Equal, "héllo wörld 😀"), m("b", Equal, "日本")]
        );
        assert_eq!(single_value(r#"{a=""}"#), "");
    }

    #[test]
    fn regex_is_anchored() {
        let ms = parse_selector(r#"{a=~"fo"}"#).unwrap();
        assert!(!ms[0].matches("foo"));
        assert!(ms[0].matches("fo"));
        let ms = parse_selector(r#"{a!~"fo|ba"}"#).unwrap();
        assert!(ms[0].matches("foo"));
        assert!(!ms[0].matches("ba"));
        let ms = parse_selector(r#"{a=~"f.*"}"#).unwrap();
        assert!(ms[0].matches("foo"));
        assert!(!ms[0].matches("xfoo"));
    }

    #[test]
    fn invalid_inputs() {
        let cases = [
            "",
            "   ",
            "\t\n",
            "{",
            "}",
            "{a}",
            "{a=}",
            "{a=b}",
            r#"{a="b""#,
            r#"{a="b}"#,
            r#"{a="b"} x"#,
            r#"{a="b"}}"#,
            r#"{a="b"}{c="d"}"#,
            r#"foo bar"#,
            r#"{a=~"("}"#,
            r#"{a!~"[z-a]"}"#,
            "{,}",
            r#"{a="b",,}"#,
            r#"{a="b" c="d"}"#,
            r#"{a=="b"}"#,
            r#"{a!"b"}"#,
            r#"{a~"b"}"#,
            r#"{a="\q"}"#,
            r#"{a="\'"}"#,
            r#"{a='\"'}"#,
            r#"{a="\x4"}"#,
            r#"{a="\xzz"}"#,
            r#"{a="\12"}"#,
            r#"{a="\400"}"#,
            r#"{a="\377"}"#,
            r#"{a="\u12"}"#,
            r#"{a="\ud800"}"#,
            r#"{a="\U00110000"}"#,
            r#"{a="\xff"}"#,
            r#"{a="\"#,
            "{a=\"b\nc\"}",
            "{a=`b}",
            r#"{a='b"}"#,
            r#"foo{"bar"}"#,
            r#"foo{__name__="bar"}"#,
            r#"foo{__name__=~"bar"}"#,
            r#"{"foo", "bar"}"#,
            r#"{"foo", __name__="bar"}"#,
            r#"{""}"#,
            r#"{""="x"}"#,
            r#""foo"{a="b"}"#,
            r#"1foo{a="b"}"#,
            r#"{1a="b"}"#,
            r#"{a:b="c"}"#,
            r#"{a.b="c"}"#,
            r#"{a="b"} é"#,
            r#"é{a="b"}"#,
            r#"{é="b"}"#,
            "{a=\"b\"}\u{a0}",
        ];
        for input in cases {
            assert!(parse_selector(input).is_err(), "{input:?} should be rejected");
        }
    }

    #[test]
    fn error_messages_carry_offsets() {
        let e = parse_selector(r#"{a="b"} x"#).unwrap_err().to_string();
        assert!(e.contains("byte 8") && e.contains("'x'"), "{e}");
        let e = parse_selector(r#"{a="b", c=~"("}"#).unwrap_err();
        assert!(matches!(e, SelectorError::InvalidMatcher { offset: 11, .. }), "{e}");
        let e = parse_selector(r#"{a="x\qy"}"#).unwrap_err();
        assert!(matches!(&e, SelectorError::InvalidEscape { offset: 5, sequence, .. } if sequence == r"\q"), "{e}");
        let e = parse_selector(r#"{a="é"} é"#).unwrap_err();
        assert!(matches!(e, SelectorError::Unexpected { offset: 9, .. }), "{e}");
        let e = parse_selector(r#"foo{"bar"}"#).unwrap_err();
        assert!(matches!(e, SelectorError::MetricNameTwice { offset: 4, .. }), "{e}");
        let e = parse_selector(r#"{a="b"#).unwrap_err();
        assert!(matches!(e, SelectorError::UnterminatedString { offset: 3 }), "{e}");
        assert!(matches!(parse_selector("  ").unwrap_err(), SelectorError::Empty { offset: 2 }));
    }

    /// Every prefix and every char-boundary cut of valid selectors must return, not panic.
    #[test]
    fn no_panics_on_truncated_input() {
        let inputs =
            [r#"proc:cpu{"sérvice.name"="x\u00e9\xc3\xa9\101", b!~`r.*`, c=~'é+', "m.é",}"#, r#"{a="\U0001F600😀"}"#];
        for input in inputs {
            for (i, _) in input.char_indices() {
                let _ = parse_selector(&input[..i]);
                let _ = parse_selector(&input[i..]);
                let _ = parse_query(&input[..i]);
            }
        }
    }
}
