//! The discovery documents (RFC 7643 sections 5 to 7, RFC 7644 section 4): the
//! ServiceProviderConfig, the ResourceTypes and the Schemas, rendered from the static definitions
//! in `schema`, each with `meta.location` under the base URL the caller passes
//! (`https://host/scim/v2`). Re-exported by `schema`; no I/O.

use serde_json::{Value, json};

use super::schema::{
    AttrDef, ENTERPRISE_USER_ATTRS, GROUP_ATTRS, ResourceKind, URN_ENTERPRISE_USER, URN_GROUP, URN_LIST_RESPONSE,
    URN_RESOURCE_TYPE, URN_SCHEMA, URN_SERVICE_PROVIDER_CONFIG, URN_USER, USER_ATTRS,
};

fn location(base: &str, rest: &str) -> String {
    format!("{}/{rest}", base.trim_end_matches('/'))
}

/// A ListResponse (RFC 7644 section 3.4.2) of `resources`, the page starting at the 1-based
/// `start_index` of `total` results.
pub fn list_response(resources: Vec<Value>, total: usize, start_index: usize) -> Value {
    json!({
        "schemas": [URN_LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start_index,
        "Resources": resources,
    })
}

/// `GET /ServiceProviderConfig`: PATCH, filter (at most `max_results` per page), sort and ETags
/// supported; bulk and password change not; authentication by an OAuth-style bearer key.
pub fn service_provider_config(base: &str, max_results: usize) -> Value {
    json!({
        "schemas": [URN_SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a tenant's SCIM key sent as \
                            'Authorization: Bearer <key>'",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": location(base, "ServiceProviderConfig"),
        },
    })
}

fn resource_type_doc(base: &str, kind: ResourceKind) -> Value {
    let (endpoint, description) = match kind {
        ResourceKind::User => ("/Users", "User Account"),
        ResourceKind::Group => ("/Groups", "Group"),
    };
    let extensions: Vec<Value> =
        kind.extensions().iter().map(|(urn, _)| json!({"schema": urn, "required": false})).collect();
    json!({
        "schemas": [URN_RESOURCE_TYPE],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": endpoint,
        "description": description,
        "schema": kind.core_urn(),
        "schemaExtensions": extensions,
        "meta": {
            "resourceType": "ResourceType",
            "location": location(base, &format!("ResourceTypes/{}", kind.name())),
        },
    })
}

const KINDS: [ResourceKind; 2] = [ResourceKind::User, ResourceKind::Group];

/// `GET /ResourceTypes`: User (with the enterprise extension, not required) and Group.
pub fn resource_types(base: &str) -> Value {
    let all: Vec<Value> = KINDS.iter().map(|k| resource_type_doc(base, *k)).collect();
    let total = all.len();
    list_response(all, total, 1)
}

/// `GET /ResourceTypes/{name}` (`User`, `Group`, any case).
pub fn resource_type(base: &str, name: &str) -> Option<Value> {
    KINDS.iter().find(|k| k.name().eq_ignore_ascii_case(name)).map(|k| resource_type_doc(base, *k))
}

fn attr_doc(def: &AttrDef) -> Value {
    let mut doc = json!({
        "name": def.name,
        "type": def.kind.as_str(),
        "multiValued": def.multi_valued,
        "description": def.description,
        "required": def.required,
        "caseExact": def.case_exact,
        "mutability": def.mutability.as_str(),
        "returned": def.returned.as_str(),
        "uniqueness": def.uniqueness.as_str(),
    });
    if let Some(obj) = doc.as_object_mut() {
        if !def.sub_attributes.is_empty() {
            let subs: Vec<Value> = def.sub_attributes.iter().map(attr_doc).collect();
            obj.insert("subAttributes".into(), subs.into());
        }
        if !def.canonical_values.is_empty() {
            obj.insert("canonicalValues".into(), def.canonical_values.into());
        }
        if !def.reference_types.is_empty() {
            obj.insert("referenceTypes".into(), def.reference_types.into());
        }
    }
    doc
}

/// The schema resources: (URN, name, description, attributes).
const SCHEMAS: [(&str, &str, &str, &[AttrDef]); 3] = [
    (URN_USER, "User", "User Account", USER_ATTRS),
    (URN_ENTERPRISE_USER, "EnterpriseUser", "Enterprise User", ENTERPRISE_USER_ATTRS),
    (URN_GROUP, "Group", "Group", GROUP_ATTRS),
];

fn schema_doc(base: &str, (urn, name, description, attrs): (&str, &str, &str, &[AttrDef])) -> Value {
    json!({
        "schemas": [URN_SCHEMA],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(attr_doc).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": location(base, &format!("Schemas/{urn}")),
        },
    })
}

/// `GET /Schemas`: the core User, the enterprise User extension and the Group schema, with the
/// attributes of section 4 of RFC 7643 that Roster keeps. The common attributes (`id`,
/// `externalId`, `meta`) belong to no schema (RFC 7643 section 3.1) and are not listed.
pub fn schemas(base: &str) -> Value {
    let all: Vec<Value> = SCHEMAS.iter().map(|s| schema_doc(base, *s)).collect();
    let total = all.len();
    list_response(all, total, 1)
}

/// `GET /Schemas/{id}`, the id being the schema's URN (any case).
pub fn schema(base: &str, id: &str) -> Option<Value> {
    SCHEMAS.iter().find(|(urn, ..)| urn.eq_ignore_ascii_case(id)).map(|s| schema_doc(base, *s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://roster.example/scim/v2/";

    #[test]
    fn service_provider_config_says_what_is_supported() {
        let doc = service_provider_config(BASE, 200);
        assert_eq!(doc["schemas"][0], URN_SERVICE_PROVIDER_CONFIG);
        assert_eq!(doc["patch"]["supported"], true);
        assert_eq!(doc["bulk"], json!({"supported": false, "maxOperations": 0, "maxPayloadSize": 0}));
        assert_eq!(doc["filter"], json!({"supported": true, "maxResults": 200}));
        assert_eq!(doc["changePassword"]["supported"], false);
        assert_eq!(doc["sort"]["supported"], true);
        assert_eq!(doc["etag"]["supported"], true);
        let auth = &doc["authenticationSchemes"];
        assert_eq!(auth.as_array().unwrap().len(), 1);
        assert_eq!(auth[0]["type"], "oauthbearertoken");
        assert_eq!(auth[0]["primary"], true);
        assert!(auth[0]["name"].is_string() && auth[0]["description"].is_string());
        assert_eq!(doc["meta"]["location"], "https://roster.example/scim/v2/ServiceProviderConfig");
    }

    #[test]
    fn resource_types_list_user_with_extension_and_group() {
        let doc = resource_types(BASE);
        assert_eq!(doc["schemas"][0], URN_LIST_RESPONSE);
        assert_eq!((doc["totalResults"].as_u64(), doc["startIndex"].as_u64()), (Some(2), Some(1)));
        let user = &doc["Resources"][0];
        assert_eq!(user["endpoint"], "/Users");
        assert_eq!(user["schema"], URN_USER);
        assert_eq!(user["schemaExtensions"], json!([{"schema": URN_ENTERPRISE_USER, "required": false}]));
        assert_eq!(user["meta"]["location"], "https://roster.example/scim/v2/ResourceTypes/User");
        assert_eq!(doc["Resources"][1]["schemaExtensions"], json!([]));
        assert_eq!(resource_type(BASE, "group").unwrap(), doc["Resources"][1]);
        assert!(resource_type(BASE, "Device").is_none());
    }

    #[test]
    fn schemas_render_the_static_definitions() {
        let doc = schemas(BASE);
        assert_eq!(doc["totalResults"], 3);
        let user = schema(BASE, "urn:ietf:params:scim:schemas:core:2.0:user").unwrap();
        assert_eq!(user, doc["Resources"][0]);
        assert_eq!(user["meta"]["location"], format!("https://roster.example/scim/v2/Schemas/{URN_USER}"));
        let attrs = user["attributes"].as_array().unwrap();
        let user_name = attrs.iter().find(|a| a["name"] == "userName").unwrap();
        assert_eq!(
            *user_name,
            json!({
                "name": "userName", "type": "string", "multiValued": false,
                "description": "Unique identifier for the user, used to sign in.",
                "required": true, "caseExact": false, "mutability": "readWrite",
                "returned": "default", "uniqueness": "server"
            })
        );
        let emails = attrs.iter().find(|a| a["name"] == "emails").unwrap();
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"][2]["canonicalValues"], json!(["work", "home", "other"]));
        let password = attrs.iter().find(|a| a["name"] == "password").unwrap();
        assert_eq!(
            (password["mutability"].as_str(), password["returned"].as_str()),
            (Some("writeOnly"), Some("never"))
        );
        for absent in ["entitlements", "roles", "x509Certificates", "id"] {
            assert!(attrs.iter().all(|a| a["name"] != absent), "{absent}");
        }
        let enterprise = schema(BASE, URN_ENTERPRISE_USER).unwrap();
        let manager = enterprise["attributes"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(manager["name"], "manager");
        assert_eq!(manager["subAttributes"][1]["referenceTypes"], json!(["User"]));
        assert_eq!(manager["subAttributes"][2]["mutability"], "readOnly");
        let group = schema(BASE, URN_GROUP).unwrap();
        assert_eq!(group["attributes"][1]["subAttributes"][0]["mutability"], "immutable");
        assert!(schema(BASE, "urn:nope").is_none());
    }
}
