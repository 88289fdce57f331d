//! Validated values of roles' requests: role names and the List filter.
//! Parsing is the only way to build them, so a handler that holds one knows
//! it is valid.

use interlock_common::page::Cursor;
use interlock_common::{ApiError, validate};
use interlock_proto::roles::v1::ListRequest;
use uuid::Uuid;

/// Page size of List when the request leaves it at 0.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page List returns.
pub const MAX_PAGE: u32 = 500;

/// A role name: 2-32 of `[a-z0-9_-]`, starting with a letter.
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

/// A List request: which assignments, how many, from where.
#[derive(Debug, PartialEq, Eq)]
pub struct AssignmentQuery {
    /// Only this user's assignments.
    pub user_id: Option<Uuid>,
    /// Only assignments of this role.
    pub role: Option<RoleName>,
    /// Rows per page.
    pub limit: i64,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
}

impl AssignmentQuery {
    pub fn parse(req: &ListRequest) -> Result<Self, ApiError> {
        Ok(Self {
            user_id: validate::optional_uuid("user_id", &req.user_id)?,
            role: if req.role.is_empty() {
                None
            } else {
                Some(RoleName::parse("role", &req.role)?)
            },
            limit: validate::page_size("page_size", req.page_size, DEFAULT_PAGE, MAX_PAGE)?,
            after: Cursor::decode("page_token", &req.page_token)?,
        })
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

    /// An empty filter lists everything from the first page; each bad field
    /// is named.
    #[test]
    fn assignment_query_rules() {
        let all = AssignmentQuery::parse(&ListRequest::default()).unwrap();
        assert_eq!(
            all,
            AssignmentQuery {
                user_id: None,
                role: None,
                limit: 100,
                after: None,
            }
        );
        let err = |r: ListRequest| AssignmentQuery::parse(&r).unwrap_err().to_string();
        assert!(
            err(ListRequest {
                user_id: "x".into(),
                ..Default::default()
            })
            .starts_with("user_id: ")
        );
        assert!(
            err(ListRequest {
                role: "Admin".into(),
                ..Default::default()
            })
            .starts_with("role: ")
        );
        assert_eq!(
            err(ListRequest {
                page_size: 501,
                ..Default::default()
            }),
            "page_size: must be at most 500"
        );
        assert!(
            err(ListRequest {
                page_token: "garbage".into(),
                ..Default::default()
            })
            .starts_with("page_token: ")
        );
    }
}
