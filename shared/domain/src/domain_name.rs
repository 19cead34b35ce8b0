//! From an email address or a website to the company's registrable domain (`mail.acme.co.uk`
//! → `acme.co.uk`), using the Public Suffix List compiled into the `psl` crate. Internationalized
//! names are converted to their ASCII (punycode) form first.

/// Why an input yields no domain to look up. Each becomes a reason on the lead, never a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("no domain in {0:?}")]
    Missing(String),
    #[error("{0:?} is not a valid domain name")]
    Invalid(String),
    #[error("{0:?} is a public suffix, not a company's domain")]
    PublicSuffix(String),
    #[error("{0} is a free-mail provider: a person, not a company")]
    FreeMail(String),
}

/// Free-mail domains are people, not companies: never looked up.
pub const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "163.com",
];

/// The registrable domain of an email address or a website (URL or bare host).
///
/// # Errors
/// [`DomainError`]: nothing usable, not a valid name, a bare public suffix, or free-mail.
pub fn registrable_domain(input: &str) -> Result<String, DomainError> {
    let raw = input.trim();
    // An email: the part after the last '@'. A URL: the host between the scheme and the path.
    // A URL: the host between the scheme (and any user info) and the path. An email: the part
    // after the last '@'. Otherwise a bare host, possibly with a path.
    let host = if let Some((_, rest)) = raw.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        host_port.split(':').next().unwrap_or_default()
    } else if let Some((_, domain)) = raw.rsplit_once('@') {
        domain
    } else {
        raw.split(['/', '?', '#']).next().unwrap_or_default()
    };
    let host = host.trim().trim_end_matches('.');
    if host.is_empty() {
        return Err(DomainError::Missing(input.to_owned()));
    }
    let ascii = idna::domain_to_ascii(host).map_err(|_| DomainError::Invalid(host.to_owned()))?;
    if ascii.is_empty()
        || !ascii.contains('.')
        || ascii.split('.').any(|label| {
            label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-')
        })
        || !ascii
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(DomainError::Invalid(host.to_owned()));
    }
    let registrable =
        psl::domain_str(&ascii).ok_or_else(|| DomainError::PublicSuffix(ascii.clone()))?;
    if FREE_MAIL.contains(&registrable) {
        return Err(DomainError::FreeMail(registrable.to_owned()));
    }
    Ok(registrable.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_table() {
        let ok = [
            ("ana@acme.com", "acme.com"),
            ("Ana.Lopez@Mail.ACME.com", "acme.com"),
            ("ops@eu.mail.acme.co.uk", "acme.co.uk"),
            ("x@acme.com.au", "acme.com.au"),
            ("https://www.acme.io/pricing?x=1", "acme.io"),
            ("http://user@shop.acme.de:8080/", "acme.de"),
            ("acme.com.", "acme.com"),
            ("www.Acme.COM", "acme.com"),
            ("info@bücher.de", "xn--bcher-kva.de"),
            ("https://münchen.example.de", "example.de"),
            ("team@acme.github.io", "acme.github.io"),
        ];
        for (input, want) in ok {
            assert_eq!(registrable_domain(input).as_deref(), Ok(want), "{input}");
        }
        type Check = fn(&DomainError) -> bool;
        let bad: [(&str, Check); 9] = [
            ("", |e| matches!(e, DomainError::Missing(_))),
            ("ana@", |e| matches!(e, DomainError::Missing(_))),
            ("someone@gmail.com", |e| {
                matches!(e, DomainError::FreeMail(_))
            }),
            ("x@mail.yahoo.co.uk", |e| {
                matches!(e, DomainError::FreeMail(_))
            }),
            ("ana@localhost", |e| matches!(e, DomainError::Invalid(_))),
            ("not a domain", |e| matches!(e, DomainError::Invalid(_))),
            ("x@-acme.com", |e| matches!(e, DomainError::Invalid(_))),
            ("x@co.uk", |e| matches!(e, DomainError::PublicSuffix(_))),
            ("x@acme..com", |e| matches!(e, DomainError::Invalid(_))),
        ];
        for (input, check) in bad {
            let result = registrable_domain(input);
            assert!(result.as_ref().is_err_and(check), "{input:?} → {result:?}");
        }
    }
}
