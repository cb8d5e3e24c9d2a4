//! Principals (design §8.6), pure: who a bearer token belongs to, and whether that principal may
//! publish to, subscribe to or manage what a request names. Tokens are compared as SHA-256
//! digests in constant time, so neither the config nor memory holds a principal's token and the
//! comparison takes the same time whatever prefix matches.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::config::topic::tokens_match;
use crate::config::AccessConfig;

/// What a principal asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish to a topic.
    Publish,
    /// Stream (SSE) or subscribe a webhook to a topic or pattern.
    Subscribe,
    /// Create, replace, delete, pause or resume a runtime subscription.
    ManageSubscriptions,
}

impl Action {
    /// The config key that grants it, as named in `403` details.
    pub fn key(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
            Action::ManageSubscriptions => "manage_subscriptions",
        }
    }
}

/// One principal, compiled.
#[derive(Debug)]
pub struct Principal {
    /// Its name from the config.
    pub name: Arc<str>,
    digest: [u8; 32],
    /// `None`: everything (the `access.api_token` shorthand).
    publish: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
    manage_subscriptions: bool,
}

impl Principal {
    /// Whether it may do `action` (on `topic`, for publish and subscribe).
    pub fn may(&self, action: Action, topic: &str) -> bool {
        let allowed = |patterns: &Option<Vec<String>>| {
            patterns
                .as_ref()
                .is_none_or(|patterns| patterns.iter().any(|p| tokens_match(p, topic)))
        };
        match action {
            Action::Publish => allowed(&self.publish),
            Action::Subscribe => allowed(&self.subscribe),
            Action::ManageSubscriptions => self.manage_subscriptions,
        }
    }
}

/// Why the principals could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "access.principals.{principal}.token_env: the environment variable `{var}` is not set or empty"
)]
pub struct MissingToken {
    principal: String,
    var: String,
}

/// Every principal; empty when the API is open.
#[derive(Debug, Default)]
pub struct Principals {
    list: Vec<Arc<Principal>>,
}

/// The name the `access.api_token` shorthand goes by.
pub const API_TOKEN_PRINCIPAL: &str = "api_token";

impl Principals {
    /// Compiles `[access]`; `env` reads the variables `token_env` names.
    pub fn compile(
        access: &AccessConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, MissingToken> {
        let mut list = Vec::new();
        if let Some(token) = &access.api_token {
            list.push(Arc::new(Principal {
                name: Arc::from(API_TOKEN_PRINCIPAL),
                digest: digest(token),
                publish: None,
                subscribe: None,
                manage_subscriptions: true,
            }));
        }
        for (name, config) in &access.principals {
            let digest = match (&config.token_sha256, &config.token_env) {
                (Some(hex), _) => from_hex(hex),
                (None, Some(var)) => match env(var).filter(|t| !t.is_empty()) {
                    Some(token) => digest(&token),
                    None => {
                        return Err(MissingToken {
                            principal: name.clone(),
                            var: var.clone(),
                        })
                    }
                },
                (None, None) => unreachable!("validated: one token source"),
            };
            list.push(Arc::new(Principal {
                name: Arc::from(name.as_str()),
                digest,
                publish: Some(config.publish.clone()),
                subscribe: Some(config.subscribe.clone()),
                manage_subscriptions: config.manage_subscriptions,
            }));
        }
        Ok(Self { list })
    }

    /// Every principal's name.
    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.list.iter().map(|p| &p.name)
    }

    /// Whether requests must present a token.
    pub fn required(&self) -> bool {
        !self.list.is_empty()
    }

    /// The principal whose token this is. Every principal's digest is compared, whichever
    /// matches, so the time taken says nothing about which one did.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Principal>> {
        let presented = digest(token);
        let mut found = None;
        for principal in &self.list {
            if bool::from(principal.digest.ct_eq(&presented)) {
                found = Some(principal.clone());
            }
        }
        found
    }
}

fn digest(token: &str) -> [u8; 32] {
    hmac_sha256::Hash::hash(token.as_bytes())
}

/// 64 hex digits (validated) to bytes.
fn from_hex(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PrincipalConfig;

    /// `printf %s test | sha256sum`.
    const TEST_SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn access() -> AccessConfig {
        let checkout = PrincipalConfig {
            token_sha256: Some(TEST_SHA256.into()),
            publish: vec!["orders.*".into()],
            ..PrincipalConfig::default()
        };
        let billing = PrincipalConfig {
            token_env: Some("BILLING_TOKEN".into()),
            subscribe: vec!["orders.>".into()],
            manage_subscriptions: true,
            ..PrincipalConfig::default()
        };
        AccessConfig {
            principals: [("checkout".into(), checkout), ("billing".into(), billing)].into(),
            ..AccessConfig::default()
        }
    }

    #[test]
    fn tokens_find_their_principal_and_patterns_decide() {
        let env = |var: &str| (var == "BILLING_TOKEN").then(|| "b-secret".to_string());
        let principals = Principals::compile(&access(), env).unwrap();
        assert!(principals.required());
        let checkout = principals.authenticate("test").unwrap();
        assert_eq!(&*checkout.name, "checkout");
        assert!(checkout.may(Action::Publish, "orders.eu"));
        assert!(!checkout.may(Action::Publish, "orders.eu.west"));
        assert!(!checkout.may(Action::Subscribe, "orders.eu"));
        assert!(!checkout.may(Action::ManageSubscriptions, ""));
        let billing = principals.authenticate("b-secret").unwrap();
        assert!(billing.may(Action::Subscribe, "orders.eu.west"));
        assert!(billing.may(Action::Subscribe, "orders.*"));
        assert!(!billing.may(Action::Publish, "orders.eu"));
        assert!(billing.may(Action::ManageSubscriptions, ""));
        assert!(principals.authenticate("tes").is_none());
        assert!(principals.authenticate("").is_none());
    }

    #[test]
    fn a_missing_token_variable_names_the_principal() {
        let err = Principals::compile(&access(), |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "access.principals.billing.token_env: the environment variable `BILLING_TOKEN` is \
             not set or empty"
        );
    }

    #[test]
    fn the_api_token_is_one_principal_that_may_do_everything() {
        let access = AccessConfig {
            api_token: Some("0123456789abcdef".into()),
            ..AccessConfig::default()
        };
        let principals = Principals::compile(&access, |_| None).unwrap();
        let p = principals.authenticate("0123456789abcdef").unwrap();
        assert_eq!(&*p.name, API_TOKEN_PRINCIPAL);
        assert!(p.may(Action::Publish, "anything"));
        assert!(p.may(Action::ManageSubscriptions, ""));
        assert!(Principals::compile(&AccessConfig::default(), |_| None)
            .unwrap()
            .authenticate("x")
            .is_none());
    }
}
