//! Field checks shared by every service's request parsing. Each failure is
//! an [`ApiError::InvalidArgument`] that names the field.

use uuid::Uuid;

use crate::ApiError;

/// Parses a UUID field.
pub fn uuid(field: &str, value: &str) -> Result<Uuid, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Uuid::parse_str(value).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// Parses an optional UUID field (empty means absent).
pub fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, ApiError> {
    if value.is_empty() {
        Ok(None)
    } else {
        uuid(field, value).map(Some)
    }
}

/// Human text: trimmed, `min..=max` characters, no control characters
/// but line breaks.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, ApiError> {
    human(field, value, min, max, true)
}

/// One line of human text (a name, an identifier): as [`text`], without
/// line breaks either, so it cannot start lines of its own where it is
/// quoted (an email, a log line).
pub fn line(field: &str, value: &str, min: usize, max: usize) -> Result<String, ApiError> {
    human(field, value, min, max, false)
}

fn human(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    line_breaks: bool,
) -> Result<String, ApiError> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars < min {
        return Err(if min == 1 {
            ApiError::invalid(field, "is required")
        } else {
            ApiError::invalid(field, format!("must be at least {min} characters"))
        });
    }
    if chars > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && !(line_breaks && c == '\n'))
    {
        return Err(ApiError::invalid(
            field,
            if line_breaks {
                "must not contain control characters"
            } else {
                "must be one line without control characters"
            },
        ));
    }
    Ok(trimmed.to_owned())
}

/// A page size: 0 means `default`, otherwise `1..=max`.
pub fn page_size(field: &str, value: u32, default: u32, max: u32) -> Result<i64, ApiError> {
    match value {
        0 => Ok(i64::from(default)),
        v if v > max => Err(ApiError::invalid(field, format!("must be at most {max}"))),
        v => Ok(i64::from(v)),
    }
}

/// A list of UUIDs: `1..=max` entries, each valid, duplicates dropped (order
/// of first appearance kept). Errors name the index: `ids[3]`.
pub fn uuid_list(field: &str, values: &[String], max: usize) -> Result<Vec<Uuid>, ApiError> {
    if values.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if values.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("must have at most {max} entries"),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let id = uuid(&format!("{field}[{i}]"), v)?;
        if seen.insert(id) {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: ApiError) -> String {
        err.to_string()
    }

    /// Errors say which field was wrong and why.
    #[test]
    fn bad_fields_are_named_in_the_error() {
        assert_eq!(
            message(uuid("user_id", "").unwrap_err()),
            "user_id: is required"
        );
        assert_eq!(
            message(uuid("user_id", "nope").unwrap_err()),
            "user_id: must be a UUID"
        );
        assert_eq!(
            message(text("first_name", "  ", 1, 5).unwrap_err()),
            "first_name: is required"
        );
        assert_eq!(
            message(text("first_name", "abcdef", 1, 5).unwrap_err()),
            "first_name: must be at most 5 characters"
        );
        assert_eq!(
            message(text("first_name", "a\u{7}b", 1, 5).unwrap_err()),
            "first_name: must not contain control characters"
        );
        assert_eq!(
            message(line("first_name", "Ada,\n\nVisit evil", 1, 50).unwrap_err()),
            "first_name: must be one line without control characters"
        );
        assert_eq!(text("text", "two\nlines", 1, 50).unwrap(), "two\nlines");
        let ids = vec![Uuid::new_v4().to_string(), "x".into()];
        assert_eq!(
            message(uuid_list("ids", &ids, 10).unwrap_err()),
            "ids[1]: must be a UUID"
        );
        assert_eq!(
            message(uuid_list("ids", &[], 10).unwrap_err()),
            "ids: must not be empty"
        );
        assert_eq!(
            message(page_size("page_size", 501, 100, 500).unwrap_err()),
            "page_size: must be at most 500"
        );
    }

    /// Good input comes back normalised.
    #[test]
    fn good_fields_are_normalised() {
        assert_eq!(text("n", "  Ada  ", 1, 10).unwrap(), "Ada");
        assert_eq!(page_size("p", 0, 20, 100).unwrap(), 20);
        let id = Uuid::new_v4();
        let ids = vec![id.to_string(), id.to_string()];
        assert_eq!(uuid_list("ids", &ids, 10).unwrap(), vec![id]);
        assert_eq!(optional_uuid("u", "").unwrap(), None);
    }
}
