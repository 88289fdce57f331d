//! Profile field rules: validated values of users' requests. Parsing is
//! the only way to build them, so a handler that holds one knows it is
//! valid.

use interlock_common::{ApiError, validate};
use interlock_proto::users::v1::{CreateUserRequest, UpdateMeRequest};
use uuid::Uuid;

/// A profile as registration creates it (CreateUser); login and email
/// lowercased, as auth stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProfile {
    pub id: Uuid,
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl NewProfile {
    pub fn parse(req: &CreateUserRequest) -> Result<Self, ApiError> {
        Ok(Self {
            id: validate::uuid("id", &req.id)?,
            login: validate::line("login", &req.login, 3, 32)?.to_ascii_lowercase(),
            email: validate::line("email", &req.email, 3, 254)?.to_ascii_lowercase(),
            first_name: validate::line("first_name", &req.first_name, 1, 100)?,
            last_name: validate::line("last_name", &req.last_name, 1, 100)?,
        })
    }
}

/// Changes requested by UpdateMe, each validated; `None` = leave as is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
}

impl ProfileChanges {
    pub fn parse(req: &UpdateMeRequest) -> Result<Self, ApiError> {
        let changes = Self {
            first_name: req
                .first_name
                .as_deref()
                .map(|v| validate::line("first_name", v, 1, 100))
                .transpose()?,
            last_name: req
                .last_name
                .as_deref()
                .map(|v| validate::line("last_name", v, 1, 100))
                .transpose()?,
            display_name: req
                .display_name
                .as_deref()
                .map(|v| validate::line("display_name", v, 0, 100))
                .transpose()?,
            locale: req.locale.as_deref().map(locale).transpose()?,
            time_zone: req.time_zone.as_deref().map(time_zone).transpose()?,
        };
        if changes == Self::default() {
            return Err(ApiError::invalid("update", "set at least one field"));
        }
        Ok(changes)
    }
}

/// A BCP 47 tag such as `en` or `pt-BR`; empty clears it.
fn locale(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    let mut parts = v.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if v.is_empty() || (lang_ok && rest_ok && v.len() <= 35) {
        Ok(v.to_owned())
    } else {
        Err(ApiError::invalid(
            "locale",
            "must be a BCP 47 tag such as en or pt-BR",
        ))
    }
}

/// An IANA zone name such as `Europe/Paris` or `UTC`; empty clears it.
fn time_zone(v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    let ok = v.len() <= 64
        && v.split('/').all(|p| {
            !p.is_empty()
                && p.starts_with(|c: char| c.is_ascii_alphabetic())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        });
    if v.is_empty() || ok {
        Ok(v.to_owned())
    } else {
        Err(ApiError::invalid(
            "time_zone",
            "must be an IANA zone name such as Europe/Paris",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only set fields change; each is validated and named when bad.
    #[test]
    fn update_rules() {
        let ok = ProfileChanges::parse(&UpdateMeRequest {
            first_name: Some(" Ada ".into()),
            locale: Some("pt-BR".into()),
            time_zone: Some("America/Sao_Paulo".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.first_name.as_deref(), Some("Ada"));
        assert_eq!(ok.last_name, None);
        let err = |r: UpdateMeRequest| ProfileChanges::parse(&r).unwrap_err().to_string();
        assert_eq!(
            err(UpdateMeRequest::default()),
            "update: set at least one field"
        );
        assert_eq!(
            err(UpdateMeRequest {
                first_name: Some("".into()),
                ..Default::default()
            }),
            "first_name: is required"
        );
        assert!(
            err(UpdateMeRequest {
                locale: Some("english!".into()),
                ..Default::default()
            })
            .starts_with("locale:")
        );
        assert!(
            err(UpdateMeRequest {
                time_zone: Some("../etc".into()),
                ..Default::default()
            })
            .starts_with("time_zone:")
        );
        assert!(
            ProfileChanges::parse(&UpdateMeRequest {
                locale: Some("".into()),
                ..Default::default()
            })
            .is_ok()
        );
    }

    /// CreateUser's fields are checked in order and normalised like auth's.
    #[test]
    fn new_profile_rules() {
        let id = Uuid::now_v7();
        let req = CreateUserRequest {
            id: id.to_string(),
            login: " Ada ".into(),
            email: "Ada@Example.com".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        };
        let p = NewProfile::parse(&req).unwrap();
        assert_eq!((p.id, p.login.as_str()), (id, "ada"));
        assert_eq!(p.email, "ada@example.com");
        let err = |r: CreateUserRequest| NewProfile::parse(&r).unwrap_err().to_string();
        assert_eq!(
            err(CreateUserRequest {
                id: "x".into(),
                ..req.clone()
            }),
            "id: must be a UUID"
        );
        assert!(
            err(CreateUserRequest {
                email: "".into(),
                ..req.clone()
            })
            .starts_with("email: ")
        );
        assert_eq!(
            err(CreateUserRequest {
                last_name: "".into(),
                ..req
            }),
            "last_name: is required"
        );
    }
}
