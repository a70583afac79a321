//! Password policy (OWASP ASVS V6): a minimum length (tenant-configurable, never below 8),
//! long passphrases allowed, no composition rules, no common passwords, not the email or
//! username. Also the service's own generated secrets.

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

/// Shortest minimum a tenant may configure.
pub const MIN_LENGTH_FLOOR: i32 = 8;
/// Default minimum length.
pub const DEFAULT_MIN_LENGTH: i32 = 12;
/// Longest password accepted (characters); well past ASVS's "at least 128".
pub const MAX_LENGTH: usize = 256;

/// Common passwords of at least 8 characters (lower-cased) that the frequency list ranks lower
/// or misses, many because they are newer than its sources (years, `changeme`-style defaults).
const ALSO_COMMON: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "123123123",
    "987654321",
    "11111111",
    "00000000",
    "88888888",
    "qwertyuiop",
    "qwerty123",
    "qwerty1234",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "abcd1234",
    "abc12345",
    "iloveyou",
    "iloveyou1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "letmein1",
    "trustno1",
    "superman",
    "starwars",
    "whatever",
    "dragon123",
    "master123",
    "monkey123",
    "shadow123",
    "computer",
    "michelle",
    "jennifer",
    "corvette",
    "mercedes",
    "basketball",
    "charlie1",
    "changeme",
    "changeme123",
    "administrator",
    "admin123",
    "admin1234",
    "adminadmin",
    "qwertyui",
    "asdfghjkl",
    "zxcvbnm123",
    "aaaaaaaa",
    "asdf1234",
    "test1234",
    "testtest",
    "internet",
    "samsung1",
    "access14",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "1234qwer",
    "qazwsx123",
    "passwordpassword",
    "123456789012",
    "1234567890123",
    "qwertyuiop123",
    "iloveyou123",
    "letmeinplease",
    "correcthorsebatterystaple",
    "summer2024",
    "winter2024",
    "spring2025",
    "autumn2025",
    "welcome2025",
    "password2025",
    "password2026",
    "company123",
    "secret123",
];

/// The 10,000 most common passwords, lower-cased, from the leaked-password frequency list that
/// zxcvbn ships (see the file's header).
static COMMON: std::sync::LazyLock<std::collections::HashSet<&'static str>> = std::sync::LazyLock::new(|| {
    include_str!("common_passwords.txt").lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
});

/// Whether `password`, as a whole and ignoring case, is one of the 10,000 most common passwords
/// or in [`ALSO_COMMON`].
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    COMMON.contains(lower.as_str()) || ALSO_COMMON.contains(&lower.as_str())
}

/// Why a password was refused; each reason becomes one `errors` entry.
pub fn check_policy(
    password: &str,
    min_length: i32,
    email: Option<&str>,
    username: Option<&str>,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let min = min_length.max(MIN_LENGTH_FLOOR) as usize;
    let chars = password.chars().count();
    if chars < min {
        problems.push(format!("must be at least {min} characters (got {chars})"));
    }
    if chars > MAX_LENGTH {
        problems.push(format!("must be at most {MAX_LENGTH} characters"));
    }
    let lower = password.to_lowercase();
    if is_common(password) {
        problems.push("is one of the most common passwords; choose another".to_string());
    }
    if email.is_some_and(|e| e.eq_ignore_ascii_case(password.trim()))
        || email.and_then(|e| e.split('@').next()).is_some_and(|local| local.len() >= 4 && lower == local)
    {
        problems.push("must not be your email address".to_string());
    }
    if username.is_some_and(|u| u.eq_ignore_ascii_case(password.trim())) {
        problems.push("must not be your username".to_string());
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// A secret the service makes: 128 bits from the OS random source, URL-safe text.
pub fn generate_secret() -> SecretString {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    use base64::Engine;
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 digest of a high-entropy generated secret, as stored (`sha256:<hex>`).
pub fn digest_generated(secret: &SecretString) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex_lower(&sha2::Sha256::digest(secret.expose_secret().as_bytes())))
}

pub fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(check_policy("correct horse battery", 12, None, None).is_ok());
        assert!(check_policy("short", 12, None, None).is_err());
        assert!(check_policy("password1234", 8, None, None).is_err());
        assert!(check_policy("ann@example.com", 8, Some("ann@example.com"), None).is_err());
        assert!(check_policy("annwashere", 8, None, Some("AnnWasHere")).is_err());
        assert_eq!(check_policy("abc", 3, None, None).err().map(|v| v.len()), Some(1));
    }

    #[test]
    fn common_passwords_are_the_listed_ones_whole() {
        assert_eq!(COMMON.len(), 10_000);
        // First, 5,000th and 10,000th of the list; an extra; any case.
        for common in ["123456", "12345QWER", "qqqqqq1", "password2026", "Football"] {
            assert!(is_common(common), "{common}");
        }
        // 10,002nd of the list, and passwords that only contain a common one.
        for fine in ["08154711", "correct horse battery", "password plus a long tail", "vX9#qLm2!wRt"] {
            assert!(!is_common(fine), "{fine}");
        }
    }

    #[test]
    fn generated_secrets_are_long_and_distinct() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.expose_secret().len(), 22);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(digest_generated(&a).starts_with("sha256:"));
    }
}
