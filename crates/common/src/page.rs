//! Opaque keyset page tokens: `(timestamp, id, tie)` of the last row
//! returned, so a page never skips or repeats rows when others are inserted
//! meanwhile. `tie` breaks ties where `(timestamp, id)` is not unique.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ApiError;

/// The position after which the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
    pub tie: String,
}

impl Cursor {
    /// Encodes the cursor as an opaque token.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}|{}",
            self.at.timestamp_micros(),
            self.id,
            self.tie
        ))
    }

    /// Decodes a token from a request; empty means "first page".
    pub fn decode(field: &str, token: &str) -> Result<Option<Cursor>, ApiError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || ApiError::invalid(field, "is not a token from a previous page");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.splitn(3, '|');
        let (Some(micros), Some(id), Some(tie)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad)?;
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        Ok(Some(Cursor {
            at,
            id,
            tie: tie.to_owned(),
        }))
    }
}

/// Given `limit + 1` fetched rows, keeps `limit` and returns the next token.
pub fn split_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> Cursor,
) -> (Vec<T>, String) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows
            .last()
            .map(|r| cursor_of(r).encode())
            .unwrap_or_default();
        (rows, next)
    } else {
        (rows, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token decodes to the cursor it was made from.
    #[test]
    fn cursor_round_trips_through_its_token() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
            tie: "editor".into(),
        };
        assert_eq!(Cursor::decode("t", &cursor.encode()).unwrap(), Some(cursor));
        assert_eq!(Cursor::decode("t", "").unwrap(), None);
    }

    /// Garbage tokens are INVALID_ARGUMENT naming the field.
    #[test]
    fn forged_tokens_are_rejected() {
        for token in ["%%%", "bm9waXBl", &URL_SAFE_NO_PAD.encode("12|nope|")] {
            let err = Cursor::decode("page_token", token).unwrap_err();
            assert!(err.to_string().starts_with("page_token:"), "{err}");
        }
    }

    /// A full page yields a next token, a short one does not.
    #[test]
    fn split_page_emits_a_token_only_when_more_rows_exist() {
        let at = Utc::now();
        let rows: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let (page, next) = split_page(rows.clone(), 2, |id| Cursor {
            at,
            id: *id,
            tie: String::new(),
        });
        assert_eq!(page.len(), 2);
        assert_eq!(Cursor::decode("t", &next).unwrap().unwrap().id, rows[1]);
        let (page, next) = split_page(rows, 3, |id| Cursor {
            at,
            id: *id,
            tie: String::new(),
        });
        assert_eq!((page.len(), next.as_str()), (3, ""));
    }
}
