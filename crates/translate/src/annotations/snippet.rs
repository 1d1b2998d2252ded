//! nginx snippets (`configuration-snippet`, `server-snippet`) read as data, never rendered.
//!
//! Most snippets in the field only change headers. A snippet made only of `more_set_headers`,
//! `more_clear_headers`, `add_header` and `proxy_set_header` is parsed into typed header
//! edits; any other directive is refused by name, so nothing a stranger wrote ever reaches a
//! configuration file.

use http::header::HeaderName;
use sluice_config::{HeaderEdits, Template};

/// The header changes a snippet asks for.
#[derive(Debug, Default)]
pub(crate) struct SnippetEdits {
    /// `proxy_set_header`.
    pub request: HeaderEdits,
    /// `more_set_headers`, `more_clear_headers`, `add_header`.
    pub response: HeaderEdits,
}

/// Parses `text` into header edits, or says which directive (or syntax) is not supported.
pub(crate) fn parse(text: &str, into: &mut SnippetEdits) -> Result<(), String> {
    for statement in statements(text)? {
        let Some((directive, args)) = statement.split_first() else {
            continue;
        };
        match directive.as_str() {
            "more_set_headers" => {
                if args.is_empty() {
                    return Err("more_set_headers needs a \"Name: value\" argument".into());
                }
                for arg in args {
                    if arg.starts_with('-') {
                        return Err(format!("more_set_headers option {arg} is not supported"));
                    }
                    let (name, value) =
                        arg.split_once(':').ok_or_else(|| format!("more_set_headers {arg:?}: expected \"Name: value\""))?;
                    into.response.set.push((header_name(name.trim())?, template(value.trim())?));
                }
            }
            "more_clear_headers" => {
                if args.is_empty() {
                    return Err("more_clear_headers needs a header name".into());
                }
                for arg in args {
                    if arg.starts_with('-') || arg.contains('*') {
                        return Err(format!("more_clear_headers {arg:?}: options and wildcards are not supported"));
                    }
                    into.response.remove.push(header_name(arg)?);
                }
            }
            "add_header" => match args {
                [name, value] => into.response.add.push((header_name(name)?, template(value)?)),
                [name, value, always] if always == "always" => {
                    into.response.add.push((header_name(name)?, template(value)?))
                }
                _ => return Err("add_header takes a name and a value (and optionally `always`)".into()),
            },
            "proxy_set_header" => match args {
                [name, value] => into.request.set.push((header_name(name)?, template(value)?)),
                _ => return Err("proxy_set_header takes a name and a value".into()),
            },
            other => return Err(format!("directive {other:?} is not supported (only more_set_headers, more_clear_headers, add_header and proxy_set_header are)")),
        }
    }
    Ok(())
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))
}

fn template(value: &str) -> Result<Template, String> {
    let parsed = Template::parse(value, false).map_err(|e| e.0)?;
    // Literal parts must be valid header text; variables are checked when rendered.
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(format!("{value:?}: control characters are not allowed in a header value"));
    }
    Ok(parsed)
}

/// Splits a snippet into statements of words, honouring quotes, escapes and comments.
fn statements(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ';' => out.push(std::mem::take(&mut words)),
            '{' | '}' => return Err("blocks ({ … }) are not supported".into()),
            '"' | '\'' => {
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted string".into()),
                        Some('\\') => word.push(chars.next().ok_or("unterminated quoted string")?),
                        Some(q) if q == c => break,
                        Some(other) => word.push(other),
                    }
                }
                words.push(word);
            }
            first => {
                let mut word = String::from(first);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || matches!(next, ';' | '{' | '}' | '"' | '\'') {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                words.push(word);
            }
        }
    }
    if !words.is_empty() {
        return Err("the last directive is not terminated with ';'".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_directives_become_edits() {
        let mut edits = SnippetEdits::default();
        let text = "more_set_headers \"X-Frame-Options: DENY\" 'X-A: b c';\n# a comment\n\
                    more_clear_headers Server;\nadd_header X-Added \"yes\" always;\nproxy_set_header X-User $http_x_user;";
        parse(text, &mut edits).unwrap();
        assert_eq!(edits.response.set.len(), 2);
        assert_eq!(edits.response.set[1].1.literal(), Some("b c"));
        assert_eq!(edits.response.remove, [HeaderName::from_static("server")]);
        assert_eq!(edits.response.add[0].0, "x-added");
        assert_eq!(edits.request.set[0].0, "x-user");
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for (text, word) in [
            ("lua_need_request_body on;", "lua_need_request_body"),
            ("more_set_headers \"A: b\"; return 200;", "return"),
            ("location /x { }", "blocks"),
            ("add_header X y", "terminated"),
            ("more_set_headers -s 404 \"A: b\";", "option"),
            ("more_set_headers \"A: $nonsense\";", "unknown"),
        ] {
            let err = parse(text, &mut SnippetEdits::default()).unwrap_err();
            assert!(err.contains(word), "{text}: {err}");
        }
    }
}
