//! The committed OpenAPI document is the generated one; every operation documents its
//! security and problem responses. `UPDATE_OPENAPI=1 cargo test openapi` rewrites the file.

use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[test]
fn committed_document_matches_the_code() {
    let generated = serde_json::to_value(roster::api::openapi_document()).unwrap();
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi")).unwrap();
        std::fs::write(COMMITTED, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).expect("openapi/openapi.json is committed"))
            .expect("committed document is JSON");
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[test]
fn every_operation_documents_security_and_problems() {
    let doc = serde_json::to_value(roster::api::openapi_document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut count = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let where_ = format!("{method} {path}");
            assert!(op.get("security").is_some(), "{where_}: no security");
            assert!(
                op["description"].as_str().is_some_and(|d| !d.is_empty()) || op["summary"].as_str().is_some(),
                "{where_}: undocumented"
            );
            let responses = op["responses"].as_object().unwrap();
            // A 303 is the success of a route a browser is sent to (an identity provider's answer).
            assert!(responses.keys().any(|c| c.starts_with('2') || c == "303"), "{where_}: no success response");
            for (code, r) in responses {
                if (code.starts_with('4') || code.starts_with('5')) && path.starts_with("/scim/") {
                    // SCIM answers with its own error objects (RFC 7644 section 3.12).
                    assert_eq!(
                        r["content"]["application/scim+json"]["schema"]["$ref"], "#/components/schemas/ScimError",
                        "{where_} {code}: not a SCIM error"
                    );
                    assert_eq!(op["security"][0]["scim_key"], serde_json::json!([]), "{where_}: scim_key");
                } else if code.starts_with('4') || code.starts_with('5') {
                    assert!(r["content"]["application/problem+json"].is_object(), "{where_} {code}: not problem+json");
                }
            }
            if path.starts_with("/api/v1/tenants/{tenant_id}") {
                assert_eq!(op["security"][0]["bearer_auth"], serde_json::json!([]), "{where_}: bearer");
                assert!(responses.contains_key("401") && responses.contains_key("404"), "{where_}: 401/404");
            }
        }
    }
    assert!(count >= 24, "only {count} operations");
    for schema in ["ProblemDetails", "MemberView", "TokenResponse", "TenantView"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema} missing");
    }
}
