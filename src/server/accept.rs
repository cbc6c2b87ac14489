//! Client-capability negotiation through `Accept` (contract §1): every comma-separated value is a
//! media type whose parameter `allow-utf8-labelnames=true` turns the UTF-8 label-name capability
//! on. Pyroscope parses each value with Go's `mime.ParseMediaType` on every route and answers 400
//! when one is malformed, so the same grammar is checked here before a request is dispatched.

/// What a client declared it can handle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Label names outside `[a-zA-Z_][a-zA-Z0-9_]*` may be returned.
    pub utf8_label_names: bool,
}

/// Why an `Accept` value was refused (the text follows Go's `mime` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    #[error("mime: no media type")]
    NoMediaType,
    #[error("mime: expected slash after first token")]
    ExpectedSlash,
    #[error("mime: expected token after slash")]
    ExpectedSubtype,
    #[error("mime: unexpected content after media subtype")]
    TrailingContent,
    #[error("mime: invalid media parameter")]
    InvalidParameter,
    #[error("mime: duplicate parameter name")]
    DuplicateParameter,
}

/// Parses every `Accept` header value; empty values are skipped as Pyroscope does.
pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Capabilities, AcceptError> {
    let mut caps = Capabilities::default();
    for value in values.into_iter().filter(|v| !v.is_empty()) {
        for media in value.split(',') {
            for (key, val) in parse_media_type(media)? {
                if key == "allow-utf8-labelnames" && val == "true" {
                    caps.utf8_label_names = true;
                }
            }
        }
    }
    Ok(caps)
}

/// RFC 2045 token characters: printable ASCII except space and the tspecials.
fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

fn consume_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    s.split_at(end)
}

/// A token or a quoted string (backslash escapes); `None` when neither is there.
fn consume_value(s: &str) -> Option<(String, &str)> {
    let Some(quoted) = s.strip_prefix('"') else {
        let (tok, rest) = consume_token(s);
        return (!tok.is_empty()).then(|| (tok.to_string(), rest));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &quoted[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

/// One media type with its parameters (keys lowercased), with Go's acceptance rules: a trailing
/// `;` is allowed, anything else that is not `; key=value` is an error.
fn parse_media_type(v: &str) -> Result<Vec<(String, String)>, AcceptError> {
    let (base, mut rest) = v.split_at(v.find(';').unwrap_or(v.len()));
    let base = base.trim();
    let (ty, after) = consume_token(base);
    if ty.is_empty() {
        return Err(AcceptError::NoMediaType);
    }
    if !after.is_empty() {
        let sub = after.strip_prefix('/').ok_or(AcceptError::ExpectedSlash)?;
        let (subtype, tail) = consume_token(sub);
        if subtype.is_empty() {
            return Err(AcceptError::ExpectedSubtype);
        }
        if !tail.is_empty() {
            return Err(AcceptError::TrailingContent);
        }
    }
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        match consume_param(rest) {
            Some((key, value, tail)) => {
                if params.iter().any(|(k, _)| *k == key) {
                    return Err(AcceptError::DuplicateParameter);
                }
                params.push((key, value));
                rest = tail;
            }
            None if rest.trim() == ";" => break,
            None => return Err(AcceptError::InvalidParameter),
        }
    }
    Ok(params)
}

fn consume_param(v: &str) -> Option<(String, String, &str)> {
    let rest = v.trim_start().strip_prefix(';')?.trim_start();
    let (key, rest) = consume_token(rest);
    if key.is_empty() {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let (value, rest) = consume_value(rest)?;
    Some((key.to_ascii_lowercase(), value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(v: &str) -> bool {
        parse([v]).unwrap().utf8_label_names
    }

    #[test]
    fn capability_is_read_from_any_media_type() {
        assert!(utf8("*/*;allow-utf8-labelnames=true"));
        assert!(utf8("application/json, */*; allow-utf8-labelnames=true"));
        assert!(utf8("*/*;ALLOW-UTF8-LABELNAMES=\"true\""));
        assert!(!utf8("*/*"));
        assert!(!utf8("*/*;allow-utf8-labelnames=false"));
        assert!(!parse([]).unwrap().utf8_label_names);
        assert!(!utf8(""), "an empty value is skipped");
    }

    #[test]
    fn what_browsers_and_clients_send_is_accepted() {
        for v in [
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8",
            "application/json",
            "application/proto;",
            "text/plain; charset=\"utf-8\"",
            "*/*;q=0.8;",
            "json",
        ] {
            assert!(parse([v]).is_ok(), "{v}");
        }
    }

    #[test]
    fn malformed_values_are_refused_like_go() {
        assert_eq!(parse(["*/*;;;="]), Err(AcceptError::InvalidParameter));
        assert_eq!(parse(["a/b,"]), Err(AcceptError::NoMediaType));
        assert_eq!(parse(["a b"]), Err(AcceptError::ExpectedSlash));
        assert_eq!(parse(["a/"]), Err(AcceptError::ExpectedSubtype));
        assert_eq!(parse(["a/b/c"]), Err(AcceptError::TrailingContent));
        assert_eq!(parse(["a/b;q"]), Err(AcceptError::InvalidParameter));
        assert_eq!(parse(["a/b;q=\"open"]), Err(AcceptError::InvalidParameter));
        assert_eq!(parse(["a/b;q=1;Q=2"]), Err(AcceptError::DuplicateParameter));
    }
}
