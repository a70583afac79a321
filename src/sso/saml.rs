//! SAML 2.0: HTTP-Redirect AuthnRequest, HTTP-POST response at the ACS. (To be written.)
