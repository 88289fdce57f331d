//! A test token issuer: an ES256 key generated at test time, its JWKS and
//! its revoked sessions served over HTTP on 127.0.0.1:0 (the two documents
//! auth serves), and tokens good and bad.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use interlock_common::jwt::AccessClaims;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use std::sync::{Arc, Mutex};

use interlock_common::revocation::{REVOKED_SESSIONS_PATH, RevokedSessions};
use uuid::Uuid;

pub const ISSUER: &str = "interlock-auth";
pub const AUDIENCE: &str = "interlock";

pub struct TokenIssuer {
    kid: String,
    key: EncodingKey,
    /// A second key that is not in the JWKS.
    stray: EncodingKey,
    jwk: Jwk,
    pub jwks_url: String,
    revoked: Arc<Mutex<Vec<Uuid>>>,
}

fn new_key() -> EncodingKey {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    EncodingKey::from_ec_der(secret.to_pkcs8_der().expect("pkcs8").as_bytes())
}

impl TokenIssuer {
    /// Generates the key and serves its JWKS.
    pub async fn start() -> Self {
        let key = new_key();
        let kid = format!("test-{}", Uuid::new_v4().simple());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some(kid.clone());
        let set = JwkSet {
            keys: vec![jwk.clone()],
        };
        let revoked: Arc<Mutex<Vec<Uuid>>> = Arc::default();
        let listed = revoked.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || {
                    let set = set.clone();
                    async move { axum::Json(set) }
                }),
            )
            .route(
                REVOKED_SESSIONS_PATH,
                axum::routing::get(move || {
                    let revoked = listed.lock().expect("revoked").clone();
                    async move { axum::Json(RevokedSessions { revoked }) }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            kid,
            key,
            stray: new_key(),
            jwk,
            jwks_url: format!("http://{addr}/.well-known/jwks.json"),
            revoked,
        }
    }

    /// Lists `session` as revoked, as auth does after Logout.
    pub fn revoke(&self, session: Uuid) {
        self.revoked.lock().expect("revoked").push(session);
    }

    pub fn claims(&self, user_id: Uuid, exp_in_secs: i64) -> AccessClaims {
        let now = chrono::Utc::now().timestamp();
        AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user_id.to_string(),
            iat: now,
            exp: now + exp_in_secs,
            jti: Uuid::new_v4().to_string(),
            sid: Uuid::new_v4().to_string(),
        }
    }

    fn sign(&self, claims: &AccessClaims, kid: &str, key: &EncodingKey) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).expect("sign")
    }

    /// A valid token for `user_id`.
    pub fn token(&self, user_id: Uuid) -> String {
        self.sign(&self.claims(user_id, 900), &self.kid, &self.key)
    }

    /// A token signed with arbitrary claims by the published key.
    pub fn token_with(&self, claims: &AccessClaims) -> String {
        self.sign(claims, &self.kid, &self.key)
    }

    /// Tokens that must all be refused, with what is wrong with each.
    pub fn bad_tokens(&self, user_id: Uuid) -> Vec<(&'static str, String)> {
        let good = self.claims(user_id, 900);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).expect("json"));
        let none_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            self.kid
        ));
        // HMAC confusion: HS256 keyed with the public key's JSON.
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(self.kid.clone());
        let public = serde_json::to_vec(&self.jwk).expect("jwk json");
        let hmac =
            jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(&public)).expect("hs256");
        let mut wrong_aud = good.clone();
        wrong_aud.aud = "someone-else".into();
        let mut wrong_iss = good.clone();
        wrong_iss.iss = "evil-issuer".into();
        let good_token = self.token(user_id);
        let (head, rest) = good_token.split_once('.').expect("jwt");
        let tampered = format!(
            "{head}.{}{}",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#),
            &rest[rest.find('.').expect("sig")..]
        );
        vec![
            (
                "expired",
                self.sign(&self.claims(user_id, -120), &self.kid, &self.key),
            ),
            ("wrongly signed", self.sign(&good, &self.kid, &self.stray)),
            ("unknown kid", self.sign(&good, "no-such-kid", &self.stray)),
            ("alg none", format!("{none_header}.{payload}.")),
            ("HMAC-confused", hmac),
            ("wrong audience", self.token_with(&wrong_aud)),
            ("wrong issuer", self.token_with(&wrong_iss)),
            ("tampered payload", tampered),
            ("garbage", "not-a-jwt".into()),
        ]
    }
}
