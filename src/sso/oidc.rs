//! OpenID Connect: the authorization code flow with state, nonce and PKCE S256. (To be written.)
