//! A small in-memory `multipart/form-data` reader for the SDK uploads of `/ingest`.
//!
//! The whole body is already in memory (the server read and size-capped it), so parts are
//! returned as slices of it, without copies. The reader accepts CRLF and bare-LF line breaks,
//! a quoted boundary, transport padding after delimiters, a preamble and an epilogue, because
//! hand-written clients produce all of these.

/// Why a form body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("no boundary parameter in Content-Type {0:?}")]
    MissingBoundary(String),
    #[error("the body does not contain the multipart boundary")]
    NoDelimiter,
    #[error("the multipart body is truncated (no closing boundary)")]
    Truncated,
    #[error("malformed header line in a multipart part: {0:?}")]
    BadHeader(String),
    #[error("the multipart form exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
}

/// One part of the form, borrowing its content from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// `name` of the part's `Content-Disposition`, if it has one.
    pub name: Option<String>,
    /// `filename` of the part's `Content-Disposition`; clients send files and plain fields alike.
    pub filename: Option<String>,
    pub data: &'a [u8],
}

/// The `boundary` parameter of a `multipart/form-data` Content-Type (quoted or not).
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    header_params(content_type)
        .into_iter()
        .find(|(k, v)| k == "boundary" && !v.is_empty())
        .map(|(_, v)| v)
        .ok_or_else(|| MultipartError::MissingBoundary(content_type.to_string()))
}

/// Parameters after the first `;` of a header value such as `form-data; name="profile"`, with
/// lowercase keys and unquoted values (backslash escapes undone); keys without `=` are skipped.
pub fn header_params(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(first) = value.find(';') else {
        return out;
    };
    let b = value.as_bytes();
    // Every index below lands on an ASCII byte or the end, hence on a char boundary.
    let mut i = first + 1;
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b';') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b';' {
            i += 1;
        }
        let key = value[key_start..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] == b';' {
            continue;
        }
        i += 1; // '='
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        let val = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            let mut escaped = false;
            let mut end = b.len();
            for (off, c) in value[i..].char_indices() {
                if escaped {
                    v.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = i + off + 1;
                    break;
                } else {
                    v.push(c);
                }
            }
            i = end;
            // Skip anything between the closing quote and the next ';'.
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
            v
        } else {
            let start = i;
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
            value[start..i].trim().to_string()
        };
        if !key.is_empty() {
            out.push((key, val));
        }
    }
    out
}

/// What follows a candidate `--boundary`.
enum Delimiter {
    /// `--boundary--`: the end of the form.
    Close,
    /// `--boundary` + padding + line break; the next part's headers start at this index.
    Next(usize),
    /// The bytes only look like a delimiter (the boundary is a prefix of longer text).
    NotOne,
}

fn classify(body: &[u8], after_dash: usize) -> Delimiter {
    let rest = body.get(after_dash..).unwrap_or_default();
    if rest.starts_with(b"--") {
        return Delimiter::Close;
    }
    let pad = rest.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
    let rest = rest.get(pad..).unwrap_or_default();
    if rest.starts_with(b"\r\n") {
        Delimiter::Next(after_dash + pad + 2)
    } else if rest.starts_with(b"\n") {
        Delimiter::Next(after_dash + pad + 1)
    } else {
        Delimiter::NotOne
    }
}

/// Finds the next real delimiter that starts right after a `\n` at or after `from`: returns
/// the index of that `\n` and what follows the boundary.
fn next_delimiter(body: &[u8], from: usize, dash: &[u8]) -> Option<(usize, Delimiter)> {
    let mut i = from;
    while i < body.len() {
        let nl = i + body.get(i..)?.iter().position(|&c| c == b'\n')?;
        let after_nl = nl + 1;
        if body.get(after_nl..).is_some_and(|r| r.starts_with(dash)) {
            match classify(body, after_nl + dash.len()) {
                Delimiter::NotOne => {}
                d => return Some((nl, d)),
            }
        }
        i = after_nl;
    }
    None
}

/// Splits a form body into its parts. `max_size` caps the summed size of the part contents.
pub fn parse<'a>(body: &'a [u8], boundary: &str, max_size: usize) -> Result<Vec<Part<'a>>, MultipartError> {
    let dash: Vec<u8> = [b"--".as_slice(), boundary.as_bytes()].concat();

    // The first delimiter may open the body without a line break before it.
    let first = if body.starts_with(&dash) {
        match classify(body, dash.len()) {
            Delimiter::NotOne => next_delimiter(body, 0, &dash).map(|(_, d)| d),
            d => Some(d),
        }
    } else {
        next_delimiter(body, 0, &dash).map(|(_, d)| d)
    };
    let mut cursor = match first {
        None => return Err(MultipartError::NoDelimiter),
        Some(Delimiter::Close) => return Ok(Vec::new()),
        Some(Delimiter::Next(at)) => at,
        Some(Delimiter::NotOne) => return Err(MultipartError::NoDelimiter),
    };

    let mut parts = Vec::new();
    let mut total = 0usize;
    loop {
        let (name, filename, content_start) = read_headers(body, cursor)?;
        // The blank line's `\n` (at content_start - 1) may double as the delimiter's line
        // break when a part is empty, so the search starts on it.
        let (nl, next) =
            next_delimiter(body, content_start.saturating_sub(1), &dash).ok_or(MultipartError::Truncated)?;
        let mut end = nl.max(content_start);
        if end > content_start && body.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        let data = body.get(content_start..end).unwrap_or_default();
        total = total.saturating_add(data.len());
        if total > max_size {
            return Err(MultipartError::TooLarge { limit: max_size });
        }
        parts.push(Part { name, filename, data });
        match next {
            Delimiter::Next(at) => cursor = at,
            _ => return Ok(parts),
        }
    }
}

/// Reads a part's header block starting at `at`; returns the disposition's `name` and
/// `filename` and the index where the content starts.
#[allow(clippy::type_complexity)]
fn read_headers(body: &[u8], mut at: usize) -> Result<(Option<String>, Option<String>, usize), MultipartError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let rest = body.get(at..).ok_or(MultipartError::Truncated)?;
        let len = rest.iter().position(|&c| c == b'\n').ok_or(MultipartError::Truncated)?;
        let mut line = &rest[..len];
        at += len + 1;
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with([' ', '\t']) {
            // Obsolete header folding: continue the previous header's value.
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => return Err(MultipartError::BadHeader(line.into_owned())),
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(MultipartError::BadHeader(line.into_owned()));
        };
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut name = None;
    let mut filename = None;
    if let Some((_, disposition)) = headers.iter().find(|(k, _)| k == "content-disposition") {
        for (k, v) in header_params(disposition) {
            match k.as_str() {
                "name" if name.is_none() => name = Some(v),
                "filename" if filename.is_none() => filename = Some(v),
                _ => {}
            }
        }
    }
    Ok((name, filename, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part<'a>(parts: &'a [Part<'_>], name: &str) -> &'a [u8] {
        parts.iter().find(|p| p.name.as_deref() == Some(name)).map(|p| p.data).unwrap()
    }

    #[test]
    fn boundary_param() {
        assert_eq!(boundary("multipart/form-data; boundary=abc123").unwrap(), "abc123");
        assert_eq!(boundary("multipart/form-data;boundary=\"a b;c\"").unwrap(), "a b;c");
        assert_eq!(boundary("Multipart/Form-Data; charset=x; BOUNDARY=Z").unwrap(), "Z");
        assert!(matches!(boundary("multipart/form-data"), Err(MultipartError::MissingBoundary(_))));
        assert!(boundary("multipart/form-data; boundary=").is_err());
        assert!(boundary("multipart/form-data; boundary=\"\"").is_err());
    }

    #[test]
    fn disposition_params() {
        let p = header_params(r#"form-data; name="profile"; filename="a\"b.pprof""#);
        assert_eq!(p, vec![("name".to_string(), "profile".to_string()), ("filename".into(), "a\"b.pprof".into())]);
        assert_eq!(header_params("form-data; flag; name=x"), vec![("name".into(), "x".into())]);
        // Unterminated quote: the rest is the value; never panics.
        assert_eq!(header_params("x; name=\"ab"), vec![("name".into(), "ab".into())]);
        assert_eq!(header_params("x; näme=\"ä\""), vec![("näme".into(), "ä".into())]);
    }

    #[test]
    fn crlf_form_with_preamble_and_epilogue() {
        let body = b"preamble\r\n--XX\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"p\"\r\nContent-Type: application/octet-stream\r\n\r\nline1\r\nline2\r\n--XX\r\nContent-Disposition: form-data; name=\"sample_type_config\"\r\n\r\n{}\r\n--XX--\r\nepilogue";
        let parts = parse(body, "XX", 1 << 20).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(part(&parts, "profile"), b"line1\r\nline2");
        assert_eq!(parts[0].filename.as_deref(), Some("p"));
        assert_eq!(part(&parts, "sample_type_config"), b"{}");
        assert_eq!(parts[1].filename, None);
    }

    #[test]
    fn lf_only_form_and_padding() {
        let body = b"--XX  \nContent-Disposition: form-data; name=profile\n\nabc\n--XX\t\ncontent-disposition: form-data; name=\"b\"\n\n\n--XX--";
        let parts = parse(body, "XX", 1 << 20).unwrap();
        assert_eq!(part(&parts, "profile"), b"abc");
        assert_eq!(part(&parts, "b"), b"");
    }

    #[test]
    fn empty_part_directly_followed_by_delimiter() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--XX--\r\n";
        let parts = parse(body, "XX", 1 << 20).unwrap();
        assert_eq!(part(&parts, "a"), b"");
    }

    #[test]
    fn boundary_prefix_inside_content_is_data() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XXY not a delimiter\r\n--XX--";
        let parts = parse(body, "XX", 1 << 20).unwrap();
        assert_eq!(part(&parts, "a"), b"x\r\n--XXY not a delimiter");
    }

    #[test]
    fn binary_content_is_kept_exactly() {
        let data: Vec<u8> = (0..=255u8).chain([b'\r', b'\n', b'-', b'-']).collect();
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"bin\"\r\n\r\n".to_vec();
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n--B--\r\n");
        let parts = parse(&body, "B", 1 << 20).unwrap();
        assert_eq!(part(&parts, "bin"), &data[..]);
    }

    #[test]
    fn malformed_bodies() {
        assert_eq!(parse(b"no boundary here", "XX", 100), Err(MultipartError::NoDelimiter));
        assert_eq!(parse(b"", "XX", 100), Err(MultipartError::NoDelimiter));
        assert_eq!(
            parse(b"--XX\r\nContent-Disposition: form-data; name=a\r\n\r\ndata", "XX", 100),
            Err(MultipartError::Truncated)
        );
        assert_eq!(parse(b"--XX\r\nContent-Dispo", "XX", 100), Err(MultipartError::Truncated));
        assert!(matches!(
            parse(b"--XX\r\nnot a header\r\n\r\nx\r\n--XX--", "XX", 100),
            Err(MultipartError::BadHeader(_))
        ));
        assert_eq!(parse(b"--XX--", "XX", 100).unwrap(), vec![]);
        // Every truncation of a valid body fails cleanly or succeeds, never panics.
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc\r\n--XX--\r\n";
        for n in 0..body.len() {
            let _ = parse(&body[..n], "XX", 100);
        }
    }

    #[test]
    fn size_limit() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n0123456789\r\n--XX--";
        assert!(parse(body, "XX", 10).is_ok());
        assert_eq!(parse(body, "XX", 9), Err(MultipartError::TooLarge { limit: 9 }));
    }
}
