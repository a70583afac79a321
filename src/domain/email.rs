//! Email addresses: trimmed, lower-cased, and checked for a plausible shape.

use std::fmt;

/// A normalised email address (trimmed, lower-case). Compare these, never raw strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() {
            return Err("must not be empty");
        }
        if s.len() > 254 {
            return Err("must be at most 254 characters");
        }
        if !validator::ValidateEmail::validate_email(&s) {
            return Err("must be a valid email address");
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_rejects() {
        assert_eq!(EmailAddress::parse("  Ann@Example.COM ").map(|e| e.into_string()), Ok("ann@example.com".into()));
        assert!(EmailAddress::parse("nope").is_err());
        assert!(EmailAddress::parse("").is_err());
    }
}
