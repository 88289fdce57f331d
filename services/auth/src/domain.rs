//! Validated values of auth's requests. Parsing is the only way to build
//! them, so a handler that holds one knows it is valid.

use interlock_common::{ApiError, validate};
use interlock_proto::auth::v1::{LoginRequest, RegisterRequest};
use secrecy::SecretString;

/// A login name: 3-32 of `[a-z0-9._-]`, starting with a letter; lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        let v = raw.trim().to_ascii_lowercase();
        if !(3..=32).contains(&v.len()) {
            return Err(ApiError::invalid(field, "must be 3 to 32 characters"));
        }
        if !v.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(ApiError::invalid(field, "must start with a letter"));
        }
        if !v
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        {
            return Err(ApiError::invalid(
                field,
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(v))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address (pragmatic check: one '@', a dotted domain, no spaces);
/// lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        let v = raw.trim().to_ascii_lowercase();
        if v.is_empty() {
            return Err(ApiError::invalid(field, "is required"));
        }
        if v.len() > 254 {
            return Err(ApiError::invalid(field, "must be at most 254 characters"));
        }
        let valid = match v.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !v.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !valid {
            return Err(ApiError::invalid(
                field,
                "must be an email address like name@example.com",
            ));
        }
        Ok(Self(v))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Fewest characters of a new password.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Most characters of any password, at Register and at Login alike.
///
/// Counted in characters (Unicode scalar values), as auth.proto documents
/// and as people count, so the limit does not depend on the script. bcrypt's
/// 72-byte limit does not apply here: bcrypt only ever sees the 44-byte
/// base64 of HMAC-SHA256(pepper, password) (see [`crate::password`]), so
/// every character counts whatever the length. The limit only bounds what an
/// unauthenticated request can make the HMAC hash (at most 512 bytes).
pub const PASSWORD_MAX_CHARS: usize = 128;

/// A password as presented at Login: present and at most
/// [`PASSWORD_MAX_CHARS`], the same rule Register applies, so every password
/// Register accepted can be presented. There is no minimum: a too-short
/// password is just a wrong one. Wrapped so it cannot be printed.
pub struct Password(pub SecretString);

impl Password {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        if raw.is_empty() {
            return Err(ApiError::invalid(field, "is required"));
        }
        if raw.chars().count() > PASSWORD_MAX_CHARS {
            return Err(ApiError::invalid(
                field,
                format!("must be at most {PASSWORD_MAX_CHARS} characters"),
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }
}

/// A new password (Register): a [`Password`] of at least
/// [`PASSWORD_MIN_CHARS`]. Wrapped so it cannot be printed.
pub struct NewPassword(pub SecretString);

impl NewPassword {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        if raw.chars().count() < PASSWORD_MIN_CHARS {
            return Err(ApiError::invalid(
                field,
                format!("must be at least {PASSWORD_MIN_CHARS} characters"),
            ));
        }
        let Password(secret) = Password::parse(field, raw)?;
        Ok(Self(secret))
    }
}

/// A registration request, fully validated.
pub struct Registration {
    pub login: Login,
    pub email: Email,
    pub password: NewPassword,
    pub first_name: String,
    pub last_name: String,
}

impl Registration {
    pub fn parse(req: &RegisterRequest) -> Result<Self, ApiError> {
        Ok(Self {
            login: Login::parse("login", &req.login)?,
            email: Email::parse("email", &req.email)?,
            password: NewPassword::parse("password", &req.password)?,
            first_name: validate::line("first_name", &req.first_name, 1, 100)?,
            last_name: validate::line("last_name", &req.last_name, 1, 100)?,
        })
    }
}

/// What Login was given. Which of login or email was typed is not decided
/// here: an account matches on either.
pub struct Credentials {
    /// Trimmed and lowercased, like stored logins and emails.
    pub login_or_email: String,
    pub password: Password,
}

impl Credentials {
    pub fn parse(req: &LoginRequest) -> Result<Self, ApiError> {
        let typed = req.login_or_email.trim();
        present_and_at_most("login_or_email", typed, 254)?;
        Ok(Self {
            login_or_email: typed.to_ascii_lowercase(),
            password: Password::parse("password", &req.password)?,
        })
    }
}

/// An account as a user names it (login or email): trimmed, lowercased,
/// present and at most 254 characters. Which of the two it is, is the
/// store's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRef(String);

impl AccountRef {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        let typed = raw.trim();
        present_and_at_most(field, typed, 254)?;
        Ok(Self(typed.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A code from an email as a user types it: 8 digits (spaces around are
/// dropped). Wrapped so it cannot be printed.
pub struct EmailCode(SecretString);

impl EmailCode {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        let v = raw.trim();
        if v.is_empty() {
            return Err(ApiError::invalid(field, "is required"));
        }
        if v.len() != crate::codes::CODE_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(
                field,
                format!(
                    "must be the {} digits from the email",
                    crate::codes::CODE_DIGITS
                ),
            ));
        }
        Ok(Self(SecretString::from(v.to_owned())))
    }

    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

/// A refresh token as a client presents it: present, and not so long that
/// hashing it is work (the tokens auth issues have 43 characters). Whether
/// it is one of ours is the store's question.
pub struct PresentedRefreshToken(String);

impl PresentedRefreshToken {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        present_and_at_most(field, raw, 128)?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Non-empty and at most `max` bytes.
fn present_and_at_most(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        Err(ApiError::invalid(field, "is required"))
    } else if value.len() > max {
        Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn err(r: Result<impl Sized, ApiError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    /// Logins are normalised to lowercase and checked character by character.
    #[test]
    fn login_rules() {
        assert_eq!(
            Login::parse("login", " Alice.B ").unwrap().as_str(),
            "alice.b"
        );
        assert_eq!(
            err(Login::parse("login", "ab")),
            "login: must be 3 to 32 characters"
        );
        assert_eq!(
            err(Login::parse("login", "1abc")),
            "login: must start with a letter"
        );
        assert!(err(Login::parse("login", "ali ce")).contains("may contain only"));
    }

    /// Emails need a local part and a dotted domain.
    #[test]
    fn email_rules() {
        assert_eq!(
            Email::parse("email", "Ada@Example.COM").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "ada",
            "@example.com",
            "ada@example",
            "ada@.com",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(
                err(Email::parse("email", bad)).starts_with("email:"),
                "{bad}"
            );
        }
        assert_eq!(err(Email::parse("email", "")), "email: is required");
    }

    /// Passwords have length limits and are never printable.
    #[test]
    fn password_rules() {
        assert_eq!(
            err(NewPassword::parse("password", "short")),
            "password: must be at least 8 characters"
        );
        assert!(NewPassword::parse("password", &"x".repeat(129)).is_err());
        let p = NewPassword::parse("password", "correct horse").unwrap();
        assert!(!format!("{:?}", p.0).contains("correct"));
    }

    /// The finding: a 100-character non-ASCII password registered (counted
    /// in characters) but Login refused it (counted in bytes). Both count
    /// characters now, with one limit.
    #[test]
    fn long_non_ascii_password_accepted_at_register_is_accepted_at_login() {
        for password in ["ü".repeat(100), "密".repeat(128), "🔑".repeat(128)] {
            assert!(
                password.len() > PASSWORD_MAX_CHARS,
                "more bytes than the limit"
            );
            let registered = NewPassword::parse("password", &password).expect("register");
            let presented = Password::parse("password", &password).expect("login");
            assert_eq!(
                registered.0.expose_secret(),
                presented.0.expose_secret(),
                "kept verbatim"
            );
        }
        let too_long = "ü".repeat(PASSWORD_MAX_CHARS + 1);
        for e in [
            err(NewPassword::parse("password", &too_long)),
            err(Password::parse("password", &too_long)),
        ] {
            assert_eq!(e, "password: must be at most 128 characters");
        }
    }

    /// Login takes any present password within the limit, even one shorter
    /// than Register's minimum (it is then simply wrong).
    #[test]
    fn login_password_needs_only_presence_and_the_length_limit() {
        assert_eq!(
            err(Password::parse("password", "")),
            "password: is required"
        );
        assert!(Password::parse("password", "x").is_ok());
        assert_eq!(
            err(NewPassword::parse("password", "")),
            "password: must be at least 8 characters"
        );
    }

    /// Login matches on the normalised form; the login is checked before
    /// the password, and each failure names its field.
    #[test]
    fn credentials_are_normalised_and_checked_in_order() {
        let req = |login: &str, password: &str| LoginRequest {
            login_or_email: login.into(),
            password: password.into(),
        };
        let c = Credentials::parse(&req("  Ada@Example.COM ", "x")).unwrap();
        assert_eq!(c.login_or_email, "ada@example.com");
        assert_eq!(
            err(Credentials::parse(&req("   ", ""))),
            "login_or_email: is required"
        );
        assert_eq!(
            err(Credentials::parse(&req(&"a".repeat(255), "x"))),
            "login_or_email: must be at most 254 characters"
        );
        assert_eq!(
            err(Credentials::parse(&req("ada", ""))),
            "password: is required"
        );
    }

    /// An account reference is normalised like stored logins and emails;
    /// a code is exactly 8 digits and never printable.
    #[test]
    fn account_refs_and_codes() {
        assert_eq!(
            AccountRef::parse("login_or_email", " Ada@Example.COM ")
                .unwrap()
                .as_str(),
            "ada@example.com"
        );
        assert_eq!(
            err(AccountRef::parse("login_or_email", "  ")),
            "login_or_email: is required"
        );
        assert_eq!(
            EmailCode::parse("code", " 01234567 ").unwrap().expose(),
            "01234567"
        );
        assert_eq!(err(EmailCode::parse("code", "")), "code: is required");
        for bad in ["1234567", "123456789", "1234 567", "abcdefgh"] {
            assert_eq!(
                err(EmailCode::parse("code", bad)),
                "code: must be the 8 digits from the email",
                "{bad}"
            );
        }
        let c = EmailCode::parse("code", "76543210").unwrap();
        assert!(!format!("{:?}", c.0).contains("76543210"));
    }

    /// A presented refresh token must be present and short; it is kept
    /// verbatim.
    #[test]
    fn presented_refresh_token_rules() {
        assert_eq!(
            err(PresentedRefreshToken::parse("refresh_token", "")),
            "refresh_token: is required"
        );
        assert_eq!(
            err(PresentedRefreshToken::parse(
                "refresh_token",
                &"t".repeat(129)
            )),
            "refresh_token: must be at most 128 characters"
        );
        let t = PresentedRefreshToken::parse("refresh_token", " abc").unwrap();
        assert_eq!(t.as_str(), " abc");
    }
}
