//! OpenID Connect: the authorization code flow with `state`, `nonce` and PKCE S256, on the
//! `openidconnect` crate over our own outbound client (`sso::http`). [`begin`] discovers the
//! issuer (cached a few minutes), records the pending sign-in and answers the IdP's URL;
//! [`complete`] exchanges the code with the client secret and checks the ID token (signature
//! against the issuer's keys, refetched once on an unknown `kid`; `iss`, `aud`, `azp`, `exp`,
//! `iat`, `nonce`) before anything in it is read; [`check_issuer`] validates a new connection.
//!
//! This module must never trust a claim of a token whose checks did not all pass, nor
//! `email_verified` in either direction (the email's domain is checked against the tenant's
//! verified domains afterwards, by `api::sso::finish`), nor log a code, secret or token.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreErrorResponseType,
    CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EmptyAdditionalClaims, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenClaims,
    IssuerUrl, JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata,
    RedirectUrl, RequestTokenError, ResponseTypes, Scope, SignatureVerificationError, StandardErrorResponse,
    TokenResponse,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::db;
use crate::error::ApiError;
use crate::sso::http::{SsoHttp, SsoHttpError};
use crate::sso::{Asserted, PROTOCOL_OIDC, Refused};
use crate::state::AppState;
use crate::store::sso::{ConnectionRow, PendingRequest};

/// How long a discovery document (with its keys) is reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(300);
/// How far the IdP's clock may be ahead of ours (`iat`) or `exp` behind.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Discovery fields beyond the crate's: whether the provider does PKCE S256.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Serialize)]
pub struct PkceMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}
impl AdditionalProviderMetadata for PkceMetadata {}

/// A provider's discovery document with its keys.
pub type Metadata = ProviderMetadata<
    PkceMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Client = openidconnect::Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    CoreTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type Claims = IdTokenClaims<EmptyAdditionalClaims, CoreGenderClaim>;

impl<'c> openidconnect::AsyncHttpClient<'c> for SsoHttp {
    type Error = SsoHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, SsoHttpError>> + Send + 'c>>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

/// Discovery documents by issuer, each reused for [`DISCOVERY_TTL`] (in `AppState`).
#[derive(Default)]
pub struct Providers {
    cached: Mutex<HashMap<String, (Instant, Arc<Metadata>)>>,
}

impl Providers {
    /// The issuer's document and keys: cached, or discovered now.
    async fn get(&self, http: &SsoHttp, issuer: &str) -> Result<Arc<Metadata>, String> {
        if let Some(found) = self.lookup(issuer) {
            return Ok(found);
        }
        let metadata = Arc::new(discover(http, issuer).await?);
        self.store(issuer, metadata.clone());
        Ok(metadata)
    }

    fn lookup(&self, issuer: &str) -> Option<Arc<Metadata>> {
        let cached = self.cached.lock().ok()?;
        cached.get(issuer).filter(|(at, _)| at.elapsed() < DISCOVERY_TTL).map(|(_, m)| m.clone())
    }

    fn store(&self, issuer: &str, metadata: Arc<Metadata>) {
        if let Ok(mut cached) = self.cached.lock() {
            cached.retain(|_, (at, _)| at.elapsed() < DISCOVERY_TTL);
            cached.insert(issuer.to_string(), (Instant::now(), metadata));
        }
    }

    /// Fetches the issuer's keys again (an ID token named a key we do not know: rotation).
    async fn refresh_keys(&self, http: &SsoHttp, issuer: &str, metadata: &Metadata) -> Result<Arc<Metadata>, String> {
        let keys = JsonWebKeySet::fetch_async(metadata.jwks_uri(), http)
            .await
            .map_err(|e| format!("the issuer's keys could not be read: {}", chain(&e)))?;
        let refreshed = Arc::new(metadata.clone().set_jwks(keys));
        self.store(issuer, refreshed.clone());
        Ok(refreshed)
    }
}

/// Reads `<issuer>/.well-known/openid-configuration` and the keys it names; the document's
/// `issuer` must equal `issuer` exactly.
async fn discover(http: &SsoHttp, issuer: &str) -> Result<Metadata, String> {
    http.check_url(issuer).map_err(|e| format!("the issuer URL {e}"))?;
    let issuer_url = IssuerUrl::new(issuer.to_string()).map_err(|e| format!("the issuer URL is not valid: {e}"))?;
    Metadata::discover_async(issuer_url, http).await.map_err(|e| format!("discovery failed: {}", chain(&e)))
}

/// An error and its causes on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

/// How the client authenticates at the token endpoint: `client_secret_basic` unless the
/// provider offers only `client_secret_post`; `None` when it offers neither.
fn auth_type(metadata: &Metadata) -> Option<AuthType> {
    match metadata.token_endpoint_auth_methods_supported() {
        None => Some(AuthType::BasicAuth),
        Some(methods) if methods.contains(&CoreClientAuthMethod::ClientSecretBasic) => Some(AuthType::BasicAuth),
        Some(methods) if methods.contains(&CoreClientAuthMethod::ClientSecretPost) => Some(AuthType::RequestBody),
        Some(_) => None,
    }
}

/// Validates a connection's issuer before it is saved: discovery works, the document names this
/// issuer exactly, and the provider does the code flow, PKCE with S256 (unless it does not say)
/// and a client secret. The
/// message says what is wrong, for the `issuer` field.
pub async fn check_issuer(state: &AppState, issuer: &str) -> Result<(), String> {
    let metadata = discover(&state.sso_http, issuer).await?;
    let code = ResponseTypes::new(vec![CoreResponseType::Code]);
    if !metadata.response_types_supported().contains(&code) {
        return Err("the provider does not offer the authorization code flow (response type `code`)".into());
    }
    // Some providers (Entra ID) do PKCE without announcing it: only a list without S256 refuses.
    if let Some(methods) = &metadata.additional_metadata().code_challenge_methods_supported
        && !methods.iter().any(|method| method == "S256")
    {
        return Err(format!(
            "the provider does not do PKCE with S256 (code_challenge_methods_supported: {})",
            methods.join(", ")
        ));
    }
    if auth_type(&metadata).is_none() {
        return Err(
            "the provider offers neither client_secret_basic nor client_secret_post at its token endpoint".into()
        );
    }
    state.oidc_providers.store(issuer, Arc::new(metadata));
    Ok(())
}

fn client(
    state: &AppState,
    metadata: &Metadata,
    client_id: &str,
    secret: Option<ClientSecret>,
) -> Result<Client, String> {
    let redirect = RedirectUrl::new(crate::api::sso::oidc_redirect_uri(state))
        .map_err(|e| format!("the redirect URI is not valid: {e}"))?;
    let auth = auth_type(metadata).ok_or("the provider accepts no client secret at its token endpoint")?;
    Ok(Client::from_provider_metadata(metadata.clone(), ClientId::new(client_id.to_string()), secret)
        .set_redirect_uri(redirect)
        .set_auth_type(auth))
}

/// Starts a sign-in: records the pending request (`state`, nonce, PKCE verifier) and answers
/// the provider's authorization URL to send the browser to. A provider that cannot be reached
/// answers 503.
pub async fn begin(state: &AppState, connection: &ConnectionRow, binding: &str) -> Result<String, ApiError> {
    let settings = connection.oidc_settings()?;
    let metadata = state
        .oidc_providers
        .get(&state.sso_http, &settings.issuer)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the identity provider could not be reached: {e}")))?;
    let client = client(state, &metadata, &settings.client_id, None).map_err(ApiError::internal)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let scopes = settings.scopes.iter().filter(|s| s.as_str() != "openid").map(|s| Scope::new(s.clone()));
    let (url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(scopes)
        .set_pkce_challenge(challenge)
        .url();
    let pending = PendingRequest {
        id: csrf.secret().clone(),
        tenant_id: connection.tenant_id.clone(),
        connection_id: connection.id.clone(),
        protocol: PROTOCOL_OIDC.to_string(),
        nonce: Some(nonce.secret().clone()),
        verifier: Some(verifier.secret().clone()),
        binding: binding.to_string(),
    };
    let master = state.master.clone();
    db::run_write(&state.pool, move |conn| crate::store::sso::save_request(conn, &master, &pending)).await?;
    Ok(url.to_string())
}

/// Completes a sign-in the browser came back from with `code`: exchanges it (with the PKCE
/// verifier and the client secret), checks the ID token, and reads the person. A refusal names
/// what failed; an `ApiError` is ours (the stored connection or secret).
pub async fn complete(
    state: &AppState,
    connection: &ConnectionRow,
    request: &PendingRequest,
    code: &str,
) -> Result<Result<Asserted, Refused>, ApiError> {
    let settings = connection.oidc_settings()?;
    let secret = connection.client_secret(&state.master)?;
    let (Some(nonce), Some(verifier)) = (&request.nonce, &request.verifier) else {
        return Ok(Err(Refused::new("invalid-state", "the sign-in was not started for OpenID Connect")));
    };
    let metadata = match state.oidc_providers.get(&state.sso_http, &settings.issuer).await {
        Ok(metadata) => metadata,
        Err(e) => return Ok(Err(Refused::new("idp-unavailable", e))),
    };
    let secret = ClientSecret::new(secret.expose_secret().to_string());
    let client = client(state, &metadata, &settings.client_id, Some(secret.clone())).map_err(ApiError::internal)?;
    let exchange = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| ApiError::internal(format!("token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.clone()));
    let tokens = match exchange.request_async(&state.sso_http).await {
        Ok(tokens) => tokens,
        Err(e) => return Ok(Err(Refused::new("token-exchange-failed", describe_token_error(&e)))),
    };
    let Some(id_token) = tokens.id_token() else {
        return Ok(Err(Refused::new("invalid-id-token", "the token answer holds no ID token")));
    };
    let nonce = Nonce::new(nonce.clone());
    let claims = match verify(&client, &metadata, &settings.client_id, id_token, &nonce) {
        Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
            // A key we do not know: the provider may have rotated its keys. Fetch them once.
            let refreshed = match state.oidc_providers.refresh_keys(&state.sso_http, &settings.issuer, &metadata).await
            {
                Ok(refreshed) => refreshed,
                Err(e) => return Ok(Err(Refused::new("idp-unavailable", e))),
            };
            let rekeyed =
                self::client(state, &refreshed, &settings.client_id, Some(secret)).map_err(ApiError::internal)?;
            verify(&rekeyed, &refreshed, &settings.client_id, id_token, &nonce)
        }
        other => other,
    };
    let claims = match claims {
        Ok(claims) => claims,
        Err(e) => return Ok(Err(refusal(&e))),
    };
    let subject = claims.subject().to_string();
    let email = match claims.email() {
        Some(email) => email.to_string(),
        None => match user_info_email(state, &client, &tokens, &claims).await {
            Ok(Some(email)) => email,
            Ok(None) => {
                return Ok(Err(Refused::new("no-email", "neither the ID token nor the user info holds an email")));
            }
            Err(refused) => return Ok(Err(refused)),
        },
    };
    Ok(Ok(Asserted {
        subject,
        email,
        given_name: claims.given_name().and_then(|c| c.get(None)).map(|v| v.to_string()),
        family_name: claims.family_name().and_then(|c| c.get(None)).map(|v| v.to_string()),
        name: claims.name().and_then(|c| c.get(None)).map(|v| v.to_string()),
    }))
}

/// The algorithms an ID token may be signed with: those the provider announces that use a key
/// of its JWKS (never `none`, nor an HMAC keyed with the client secret); RS256 when it
/// announces none of them.
fn signing_algorithms(metadata: &Metadata) -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm::{HmacSha256, HmacSha384, HmacSha512};
    let announced = metadata.id_token_signing_alg_values_supported().iter();
    let keyed: Vec<_> = announced
        .filter(|alg| !matches!(alg, HmacSha256 | HmacSha384 | HmacSha512 | CoreJwsSigningAlgorithm::None))
        .cloned()
        .collect();
    if keyed.is_empty() { vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256] } else { keyed }
}

/// Checks the ID token: the crate verifies the signature (with [`signing_algorithms`]), `iss`,
/// `aud` (no other audience trusted), `exp` and the nonce; we add `iat` (not ahead of us by
/// more than the skew) and `azp` (required with several audiences, and always this client when
/// present).
fn verify(
    client: &Client,
    metadata: &Metadata,
    client_id: &str,
    id_token: &openidconnect::IdToken<
        EmptyAdditionalClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    nonce: &Nonce,
) -> Result<Claims, ClaimsVerificationError> {
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(signing_algorithms(metadata))
        .set_time_fn(|| Utc::now() - chrono::Duration::seconds(CLOCK_SKEW_SECS))
        .set_issue_time_verifier_fn(|iat| {
            let latest = Utc::now() + chrono::Duration::seconds(CLOCK_SKEW_SECS);
            if iat > latest { Err(format!("{ISSUED_AHEAD} ({iat})")) } else { Ok(()) }
        });
    let claims = id_token.claims(&verifier, nonce)?;
    let several = claims.audiences().len() > 1;
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != client_id => {
            return Err(ClaimsVerificationError::InvalidAudience(format!(
                "azp is `{}`, not this client",
                azp.as_str()
            )));
        }
        None if several => {
            return Err(ClaimsVerificationError::InvalidAudience("several audiences and no azp".into()));
        }
        _ => {}
    }
    Ok(claims.clone())
}

const ISSUED_AHEAD: &str = "issued in the future";

/// The refusal for a failed ID token check.
fn refusal(error: &ClaimsVerificationError) -> Refused {
    let detail = format!("the ID token was refused: {}", chain(error));
    let reason = match error {
        ClaimsVerificationError::InvalidIssuer(_) => "wrong-issuer",
        ClaimsVerificationError::InvalidAudience(_) => "wrong-audience",
        ClaimsVerificationError::InvalidNonce(_) => "wrong-nonce",
        ClaimsVerificationError::Expired(why) if why.starts_with(ISSUED_AHEAD) => "invalid-id-token",
        ClaimsVerificationError::Expired(_) => "token-expired",
        _ => "invalid-id-token",
    };
    Refused::new(reason, detail)
}

/// What the token endpoint's refusal said, without the code or secret.
fn describe_token_error<E: std::error::Error + 'static>(
    error: &RequestTokenError<E, StandardErrorResponse<CoreErrorResponseType>>,
) -> String {
    match error {
        RequestTokenError::ServerResponse(answer) => {
            let description = answer.error_description().map(|d| format!(": {d}")).unwrap_or_default();
            format!("the token endpoint answered {}{description}", answer.error())
        }
        RequestTokenError::Request(e) => format!("the token endpoint could not be reached: {}", chain(e)),
        RequestTokenError::Parse(e, _) => format!("the token endpoint's answer could not be read: {e}"),
        RequestTokenError::Other(e) => format!("the token request failed: {e}"),
    }
}

/// The email from the user info endpoint (whose `sub` must be the ID token's).
async fn user_info_email(
    state: &AppState,
    client: &Client,
    tokens: &CoreTokenResponse,
    claims: &Claims,
) -> Result<Option<String>, Refused> {
    let request = match client.user_info(tokens.access_token().clone(), Some(claims.subject().clone())) {
        Ok(request) => request,
        Err(_) => return Ok(None),
    };
    let info: CoreUserInfoClaims = request
        .request_async(&state.sso_http)
        .await
        .map_err(|e| Refused::new("userinfo-failed", format!("the user info request failed: {}", chain(&e))))?;
    Ok(info.email().map(|email| email.to_string()))
}
