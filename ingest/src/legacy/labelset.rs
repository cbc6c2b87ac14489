//! The `name` query parameter of `/ingest`: `<app>{k1=v1,k2=v2}`, no quotes.
//!
//! The grammar is the one of the original Pyroscope agents, including its quirks, because every
//! old client builds the string by hand: the app name is trimmed and restricted to
//! `[A-Za-z0-9_./-]`; inside the braces `=` separates key and value, `,` or `}` ends a value;
//! keys and values are trimmed; keys must match `[A-Za-z0-9_.]+` unless they are `__name__`, which
//! replaces the app name. A pair that is not terminated (`app{a=b`) is ignored; text after a
//! `}` that closes a value keeps being read as more pairs (`app{a=1}b=2}` has two labels), and
//! only a `}` where a key is expected ends the set.

use std::collections::BTreeMap;

/// The label key that carries the app name inside the parsed set (and may override it).
pub const APP_NAME_KEY: &str = "__name__";

/// Why a `name` was refused; the HTTP layer answers 400 with `name: <this message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelSetError {
    #[error("service name is required")]
    ServiceNameRequired,
    #[error("invalid service name: {name}: character is not allowed: {ch:?}")]
    InvalidServiceName { name: String, ch: char },
    #[error("label name is required")]
    LabelNameRequired,
    #[error("invalid label name: {name}: character is not allowed: {ch:?}")]
    InvalidLabelName { name: String, ch: char },
}

/// A parsed `name`: the app name and the labels given in braces (without `__name__`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameLabels {
    /// The app name (`myapp.cpu` in `myapp.cpu{env=prod}`), or the `__name__` override.
    pub app_name: String,
    /// Labels from the braces, by name; for a repeated key the last value wins.
    pub labels: BTreeMap<String, String>,
}

impl NameLabels {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// A non-empty `profile_id` marks an exemplar upload of the OG agents, which is dropped.
    pub fn has_profile_id(&self) -> bool {
        self.get(crate::model::labels::PROFILE_ID).is_some_and(|v| !v.is_empty())
    }
}

fn is_label_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

fn is_service_name_char(c: char) -> bool {
    is_label_name_char(c) || c == '-' || c == '/'
}

fn validate_service_name(name: &str) -> Result<(), LabelSetError> {
    if name.is_empty() {
        return Err(LabelSetError::ServiceNameRequired);
    }
    match name.chars().find(|c| !is_service_name_char(*c)) {
        Some(ch) => Err(LabelSetError::InvalidServiceName { name: name.to_string(), ch }),
        None => Ok(()),
    }
}

fn validate_label_name(name: &str) -> Result<(), LabelSetError> {
    if name.is_empty() {
        return Err(LabelSetError::LabelNameRequired);
    }
    match name.chars().find(|c| !is_label_name_char(*c)) {
        Some(ch) => Err(LabelSetError::InvalidLabelName { name: name.to_string(), ch }),
        None => Ok(()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    AppName,
    Key,
    Value,
    Done,
}

/// Parses a `name` parameter. An absent parameter is the empty string, which is refused with
/// "service name is required" like any other empty app name.
pub fn parse(name: &str) -> Result<NameLabels, LabelSetError> {
    let mut out = NameLabels::default();
    let mut override_app: Option<String> = None;
    let mut state = State::AppName;
    let mut key = String::new();
    let mut value = String::new();

    // A virtual `{` at the end closes an app name that has no braces at all.
    for c in name.chars().chain(std::iter::once('{')) {
        match state {
            State::AppName => {
                if c == '{' {
                    let app = value.trim();
                    validate_service_name(app)?;
                    out.app_name = app.to_string();
                    value.clear();
                    state = State::Key;
                } else {
                    value.push(c);
                }
            }
            State::Key => match c {
                '}' => state = State::Done,
                '=' => {
                    value.clear();
                    state = State::Value;
                }
                _ => key.push(c),
            },
            State::Value => match c {
                ',' | '}' => {
                    let k = key.trim();
                    let v = value.trim().to_string();
                    if k == APP_NAME_KEY {
                        override_app = Some(v);
                    } else {
                        validate_label_name(k)?;
                        out.labels.insert(k.to_string(), v);
                    }
                    key.clear();
                    // Even `}` goes back to reading keys: the closing brace only ends the set
                    // when it follows a key, so text after `{a=1}` is still parsed as pairs.
                    state = State::Key;
                }
                _ => value.push(c),
            },
            State::Done => break,
        }
    }
    if let Some(app) = override_app {
        out.app_name = app;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn plain_app_name() {
        let n = parse("my-app/x.cpu").unwrap();
        assert_eq!(n.app_name, "my-app/x.cpu");
        assert!(n.labels.is_empty());
    }

    #[test]
    fn labels_are_trimmed_and_dotted_keys_allowed() {
        let n = parse(" app.cpu { env = prod , otel.scope.name=com.grafana/go ,region=eu}").unwrap();
        assert_eq!(n.app_name, "app.cpu");
        assert_eq!(n.labels, labels(&[("env", "prod"), ("otel.scope.name", "com.grafana/go"), ("region", "eu")]));
    }

    #[test]
    fn quotes_are_part_of_the_value() {
        // The syntax has no quoting: quote characters stay in the value verbatim.
        let n = parse(r#"app{env="prod",x='y'}"#).unwrap();
        assert_eq!(n.get("env"), Some(r#""prod""#));
        assert_eq!(n.get("x"), Some("'y'"));
    }

    #[test]
    fn values_may_contain_anything_but_separators() {
        let n = parse("app{path=/a b/{c=d}").unwrap();
        assert_eq!(n.get("path"), Some("/a b/{c=d"));
    }

    #[test]
    fn name_key_overrides_app_name() {
        let n = parse("app{__name__=other,env=x}").unwrap();
        assert_eq!(n.app_name, "other");
        assert_eq!(n.labels, labels(&[("env", "x")]));
    }

    #[test]
    fn last_value_wins_and_empty_value_is_kept() {
        let n = parse("app{a=1,a=2,b=}").unwrap();
        assert_eq!(n.labels, labels(&[("a", "2"), ("b", "")]));
    }

    #[test]
    fn unterminated_and_trailing_parts_are_ignored() {
        assert_eq!(parse("app{a=1").unwrap().labels, labels(&[]));
        assert_eq!(parse("app{a=1,b").unwrap().labels, labels(&[("a", "1")]));
        assert_eq!(parse("app{}").unwrap().labels, labels(&[]));
        assert_eq!(parse("app{a=1,}junk=2").unwrap().labels, labels(&[("a", "1")]));
    }

    #[test]
    fn text_after_a_closing_value_brace_is_more_pairs() {
        assert_eq!(parse("app{a=1}b=2}").unwrap().labels, labels(&[("a", "1"), ("b", "2")]));
        assert_eq!(
            parse("app{a=1}junk{b=2}").unwrap_err(),
            LabelSetError::InvalidLabelName { name: "junk{b".into(), ch: '{' }
        );
    }

    #[test]
    fn empty_app_name_is_required() {
        assert_eq!(parse(""), Err(LabelSetError::ServiceNameRequired));
        assert_eq!(parse("  {a=b}"), Err(LabelSetError::ServiceNameRequired));
        assert_eq!(LabelSetError::ServiceNameRequired.to_string(), "service name is required");
    }

    #[test]
    fn invalid_app_name() {
        let e = parse("my app{a=b}").unwrap_err();
        assert_eq!(e, LabelSetError::InvalidServiceName { name: "my app".into(), ch: ' ' });
        assert_eq!(e.to_string(), "invalid service name: my app: character is not allowed: ' '");
        assert!(parse("app}").is_err());
        assert!(parse("app=1").is_err());
        assert!(parse("äpp").is_err());
    }

    #[test]
    fn invalid_label_names() {
        let e = parse("app{bad-key=1}").unwrap_err();
        assert_eq!(e, LabelSetError::InvalidLabelName { name: "bad-key".into(), ch: '-' });
        assert_eq!(e.to_string(), "invalid label name: bad-key: character is not allowed: '-'");
        assert_eq!(parse("app{=1}").unwrap_err(), LabelSetError::LabelNameRequired);
        assert_eq!(parse("app{a=1, =2}").unwrap_err(), LabelSetError::LabelNameRequired);
        assert!(matches!(parse("app{a/b=1}"), Err(LabelSetError::InvalidLabelName { .. })));
    }

    #[test]
    fn profile_id_detection() {
        assert!(parse("app{profile_id=abc}").unwrap().has_profile_id());
        assert!(!parse("app{profile_id=}").unwrap().has_profile_id());
        assert!(!parse("app").unwrap().has_profile_id());
    }
}
