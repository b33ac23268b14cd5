//! Google OAuth for Vertex AI service accounts: the key file ([`service_account`]), the RS256
//! JWT assertion ([`jwt`]), the token endpoint's request and answer and the token cache with an
//! injected clock ([`token`]), tied together by [`GoogleAuth`].
//!
//! Flow: [`GoogleAuth::fetch`] says when a token must be fetched and builds the callout (a form
//! POST of `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>` to the key's
//! `token_uri`, normally `https://oauth2.googleapis.com/token`); the caller sends it and hands the
//! answer to [`GoogleAuth::on_response`]; [`TokenCache::usable`] gives the cached token while it
//! is usable. The cache belongs to the worker's state (`crate::state`), not to the config. Everything
//! is pure over the clock passed in, so it is tested natively.

pub mod jwt;
pub mod service_account;
pub mod token;

pub use service_account::ServiceAccount;
pub use token::{AccessToken, TokenCache};

/// The OAuth scope Vertex AI needs.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Why a token could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The service-account key file is unusable.
    #[error("service account key: {0}")]
    Key(String),
    /// The JWT could not be signed.
    #[error("cannot sign the JWT assertion: {0}")]
    Sign(String),
    /// The token endpoint refused or answered something unusable.
    #[error("token endpoint: {0}")]
    Token(String),
}

/// One token-endpoint callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFetch {
    /// `:authority` (the host of the key's `token_uri`).
    pub authority: String,
    /// `:path` (the path of `token_uri`).
    pub path: String,
    /// `content-type` of the body.
    pub content_type: &'static str,
    /// The form body.
    pub body: String,
}

/// A service account and the scope its tokens are for (the token cache is kept by the caller).
#[derive(Debug)]
pub struct GoogleAuth {
    account: ServiceAccount,
    scope: String,
}

impl GoogleAuth {
    /// Auth for `account` with the Cloud Platform scope.
    pub fn new(account: ServiceAccount) -> Self {
        Self {
            account,
            scope: CLOUD_PLATFORM_SCOPE.into(),
        }
    }

    /// The service account's e-mail (for logs).
    pub fn client_email(&self) -> &str {
        &self.account.client_email
    }

    /// The callout to make at `now`, when `cache` has no token or one about to expire and no
    /// fetch is already under way (`force`: even then, for a request that cannot go on without a
    /// token); the fetch is then recorded in `cache` as started.
    pub fn fetch(
        &self,
        cache: &mut TokenCache,
        now: i64,
        force: bool,
    ) -> Result<Option<TokenFetch>, AuthError> {
        if !force && !cache.should_fetch(now) {
            return Ok(None);
        }
        let assertion = jwt::assertion(&self.account, &self.scope, now)?;
        let (authority, path) = token::split_uri(&self.account.token_uri)?;
        cache.start_fetch(now);
        Ok(Some(TokenFetch {
            authority,
            path,
            content_type: token::FORM,
            body: token::request_body(&assertion),
        }))
    }

    /// Take the token endpoint's answer (`status` 0: no answer) received at `now` into `cache`.
    pub fn on_response(
        &self,
        cache: &mut TokenCache,
        status: u16,
        body: &[u8],
        now: i64,
    ) -> Result<(), AuthError> {
        match token::parse_response(status, body, now) {
            Ok(t) => {
                cache.store(t);
                Ok(())
            }
            Err(e) => {
                cache.fail(now);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
