//! Role names: 2-32 of `[a-z0-9_-]`, starting with a letter.

use interlock_common::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ApiError> {
        let v = raw.trim();
        if v.is_empty() {
            return Err(ApiError::invalid(field, "is required"));
        }
        let ok = (2..=32).contains(&v.len())
            && v.starts_with(|c: char| c.is_ascii_lowercase())
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(ApiError::invalid(
                field,
                "must be 2 to 32 lowercase letters, digits, '_' or '-', starting with a letter",
            ));
        }
        Ok(Self(v.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Role names follow the documented pattern; errors name the field.
    #[test]
    fn role_name_rules() {
        assert_eq!(
            RoleName::parse("role", " editor ").unwrap().as_str(),
            "editor"
        );
        for bad in ["", "a", "Admin", "1st", "has space", &"x".repeat(33)] {
            let e = RoleName::parse("role", bad).unwrap_err().to_string();
            assert!(e.starts_with("role: "), "{bad}: {e}");
        }
    }
}
