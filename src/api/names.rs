//! Name, label and key syntax, with the apiserver's own error wording.
//! k8s: staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go

fn alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: lower-case alphanumerics and '-', alphanumeric at both ends, at most 63.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum);
    if !ok {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        );
    }
    errs
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".into());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| alnum(c) || c == '-')
                && part.starts_with(alnum)
                && part.ends_with(alnum)
        });
    if !ok {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        );
    }
    errs
}

/// RFC 1035 label (Service names): like an RFC 1123 label but starting with a letter.
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(alnum);
    if !ok {
        errs.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        );
    }
    errs
}

fn name_part(s: &str) -> bool {
    let b = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| b(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(b)
        && s.ends_with(b)
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain.
pub fn qualified_name(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if !name_part(name) {
        errs.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .into(),
        );
    }
    errs
}

/// A label value: empty, or at most 63 characters of the name-part alphabet.
pub fn label_value(s: &str) -> Vec<String> {
    if s.is_empty() || name_part(s) {
        Vec::new()
    } else {
        vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into()]
    }
}

/// A ConfigMap or Secret data key.
pub fn config_key(s: &str) -> Vec<String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s != "."
        && s != "..";
    if ok {
        Vec::new()
    } else {
        vec!["a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into()]
    }
}

/// An IANA service name (container and service port names): at most 15 characters, lower-case
/// alphanumerics and '-', at least one letter, no '--', no '-' at either end.
pub fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push("must be no more than 15 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases: &[(&str, bool, bool, bool)] = &[
            // name, label ok, subdomain ok, dns1035 ok
            ("web", true, true, true),
            ("web-1", true, true, true),
            ("1web", true, true, false),
            ("web.example.com", false, true, false),
            ("Web", false, false, false),
            ("-web", false, false, false),
            ("web-", false, false, false),
            ("", false, false, false),
            ("a..b", false, false, false),
            (&"a".repeat(64), false, true, false),
        ];
        for (name, label, sub, d1035) in cases {
            assert_eq!(dns1123_label(name).is_empty(), *label, "label {name}");
            assert_eq!(dns1123_subdomain(name).is_empty(), *sub, "subdomain {name}");
            assert_eq!(dns1035_label(name).is_empty(), *d1035, "1035 {name}");
        }
        assert!(dns1123_subdomain(&"a".repeat(254)).len() == 1);
    }

    #[test]
    fn labels_and_keys() {
        for (key, ok) in [
            ("app", true),
            ("app.kubernetes.io/name", true),
            ("Example.com/x", false),
            ("/x", false),
            ("a/b/c", false),
            ("my_key", true),
            ("-x", false),
        ] {
            assert_eq!(qualified_name(key).is_empty(), ok, "{key}");
        }
        for (value, ok) in [
            ("", true),
            ("v1.2_x", true),
            ("-x", false),
            (&*"v".repeat(64), false),
        ] {
            assert_eq!(label_value(value).is_empty(), ok, "{value}");
        }
        for (key, ok) in [
            ("config.yaml", true),
            ("KEY_1", true),
            ("..", false),
            ("a/b", false),
        ] {
            assert_eq!(config_key(key).is_empty(), ok, "{key}");
        }
        for (name, ok) in [
            ("http", true),
            ("http-2", true),
            ("80", false),
            ("a--b", false),
            ("averyverylongname", false),
        ] {
            assert_eq!(port_name(name).is_empty(), ok, "{name}");
        }
    }
}
