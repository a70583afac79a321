//! `/scim/v2` in the OpenAPI document, under the tag `SCIM`. The SCIM routes are plain actix
//! routes (`api::scim::scope`), so their operations are written here, beside the handlers' own
//! rules: SCIM's bodies are open-ended by design (RFC 7643 lets a client send attributes a server
//! ignores, and a server publish its own through `/Schemas`), so the schemas name what Roster
//! reads and returns and leave the rest open. The request check (`api::contract`) leaves these
//! paths to the SCIM handlers, which answer in SCIM's error format.

use serde_json::{Map, Value, json};

const CT: &str = "application/scim+json";

fn content(schema: &str, example: Option<Value>) -> Value {
    let mut media = json!({"schema": {"$ref": format!("#/components/schemas/{schema}")}});
    if let Some(e) = example {
        media["example"] = e;
    }
    json!({ CT: media, "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}} })
}

fn answer(description: &str, schema: &str, example: Option<Value>) -> Value {
    let mut c = content(schema, example);
    if let Some(o) = c.as_object_mut() {
        o.remove("application/json");
    }
    json!({"description": description, "content": c})
}

fn error(description: &str) -> Value {
    answer(description, "ScimError", None)
}

fn errors(codes: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for code in codes {
        let text = match *code {
            "400" => {
                "Bad request: `scimType` says which (`invalidValue`, `invalidFilter`, `invalidPath`, `invalidSyntax`, `mutability`, `noTarget`)"
            }
            "401" => "No usable `scim` key",
            "403" => "Not a `scim` key, or the member is an owner (owners are managed in Roster)",
            "404" => "No such resource in this tenant",
            "405" => "The path does not serve this method",
            "409" => "`uniqueness`: the userName, email or group name is taken",
            "412" => "`If-Match` names a version that is no longer current",
            "413" => "The body is larger than 4 MiB",
            "415" => "The body is not application/scim+json or application/json",
            "429" => "Too many requests with this key; see `Retry-After`",
            _ => "Error",
        };
        out.insert(code.to_string(), error(text));
    }
    out
}

fn op(
    id: &str,
    summary: &str,
    description: &str,
    params: Vec<Value>,
    body: Option<(&str, Value)>,
    ok: (&str, Value),
    codes: &[&str],
) -> Value {
    let mut responses = errors(codes);
    responses.insert(ok.0.to_string(), ok.1);
    let mut o = json!({
        "tags": ["SCIM"],
        "operationId": id,
        "summary": summary,
        "description": description,
        "security": [{"scim_key": []}],
        "responses": responses,
    });
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some((schema, example)) = body {
        o["requestBody"] = json!({"required": true, "content": content(schema, Some(example))});
    }
    o
}

fn id_param(name: &str, what: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": what, "schema": {"type": "string", "minLength": 1, "maxLength": 200}})
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn projection() -> Vec<Value> {
    vec![
        query(
            "attributes",
            "Only these attributes (comma-separated; `id` and `schemas` always)",
            json!({"type": "string", "maxLength": 2000}),
        ),
        query(
            "excludedAttributes",
            "Leave these attributes out (comma-separated), e.g. `members`",
            json!({"type": "string", "maxLength": 2000}),
        ),
    ]
}

fn list_params() -> Vec<Value> {
    let mut p = vec![
        query(
            "filter",
            "RFC 7644 section 3.4.2.2 filter, e.g. `userName eq \"ada@example.com\"`",
            json!({"type": "string", "maxLength": 8192, "example": "userName eq \"ada@example.com\""}),
        ),
        query("sortBy", "Attribute to sort by, e.g. `userName`", json!({"type": "string", "maxLength": 200})),
        query(
            "sortOrder",
            "`ascending` (default) or `descending`",
            json!({"type": "string", "enum": ["ascending", "descending"]}),
        ),
        query(
            "startIndex",
            "1-based index of the first result (default 1)",
            json!({"type": "integer", "minimum": 1, "default": 1}),
        ),
        query(
            "count",
            "Results per page, 0 to 200 (default 100)",
            json!({"type": "integer", "minimum": 0, "maximum": 200, "default": 100}),
        ),
    ];
    p.extend(projection());
    p
}

fn if_match() -> Value {
    json!({"name": "If-Match", "in": "header", "required": false, "description": "The `meta.version` (ETag) you read: 412 if the resource changed since", "schema": {"type": "string", "pattern": r#"^(\*|(W/)?"[0-9]{1,9}")$"#, "example": "W/\"3\""}})
}

fn user_example() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
        "title": "Engineer",
        "active": true,
        "externalId": "00u1ab2cd3EF4gh5i6j7",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
    })
}

fn user_answer() -> Value {
    let mut u = user_example();
    u["id"] = json!("01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30");
    u["meta"] = json!({"resourceType": "User", "created": "2026-12-07T09:00:00.000000Z", "lastModified": "2026-12-07T09:00:00.000000Z", "location": "https://roster.example.com/scim/v2/Users/01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30", "version": "W/\"1\""});
    u
}

fn group_example() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Roster Admins", "externalId": "00g1ab2cd3", "members": [{"value": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30"}]})
}

fn patch_example() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]})
}

fn search_example() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"a\"", "startIndex": 1, "count": 10})
}

fn resource_paths(kind: &str, one: &str) -> Vec<(String, Value)> {
    let (schema, example, answer_example) = if kind == "Users" {
        ("ScimUser", user_example(), user_answer())
    } else {
        ("ScimGroup", group_example(), json!(null))
    };
    let ans = |d: &str| answer(d, schema, if answer_example.is_null() { None } else { Some(answer_example.clone()) });
    let list = op(
        &format!("scim_list_{}", kind.to_lowercase()),
        &format!("List or filter {kind}"),
        &format!(
            "The tenant's {kind}, filtered (RFC 7644 section 3.4.2), sorted and paged with an exact `totalResults`."
        ),
        list_params(),
        None,
        ("200", answer("A page", "ScimListResponse", None)),
        &["400", "401", "403", "429"],
    );
    let create = op(
        &format!("scim_create_{}", one.to_lowercase()),
        &format!("Create a {one}"),
        &format!(
            "201 with `Location` and `ETag`. See README \"Directory provisioning\" for how a {one} maps onto Roster."
        ),
        projection(),
        Some((schema, example.clone())),
        ("201", ans("Created")),
        &["400", "401", "403", "409", "413", "415", "429"],
    );
    let search = op(
        &format!("scim_search_{}", kind.to_lowercase()),
        &format!("Search {kind} (POST .search)"),
        "The list's parameters in a SearchRequest body.",
        vec![],
        Some(("ScimSearchRequest", search_example())),
        ("200", answer("A page", "ScimListResponse", None)),
        &["400", "401", "403", "413", "415", "429"],
    );
    let id = id_param("id", &format!("The {one}'s id"));
    let mut one_params = vec![id.clone()];
    one_params.extend(projection());
    let mut write_params = one_params.clone();
    write_params.push(if_match());
    let get = op(
        &format!("scim_get_{}", one.to_lowercase()),
        &format!("Read a {one}"),
        "With `ETag`.",
        one_params,
        None,
        ("200", ans("The resource")),
        &["401", "403", "404", "429"],
    );
    let put = op(
        &format!("scim_replace_{}", one.to_lowercase()),
        &format!("Replace a {one}"),
        "The whole resource (attributes left out are cleared).",
        write_params.clone(),
        Some((schema, example)),
        ("200", ans("The resource after the change")),
        &["400", "401", "403", "404", "409", "412", "413", "415", "429"],
    );
    let patch = op(
        &format!("scim_patch_{}", one.to_lowercase()),
        &format!("Change a {one} (PATCH)"),
        "RFC 7644 section 3.5.2 operations as Okta and Microsoft Entra ID send them, applied all or none; 200 with the resource.",
        write_params.clone(),
        Some(("ScimPatchRequest", patch_example())),
        ("200", ans("The resource after the change")),
        &["400", "401", "403", "404", "409", "412", "413", "415", "429"],
    );
    let mut delete_params = vec![id];
    delete_params.push(if_match());
    let delete = op(
        &format!("scim_delete_{}", one.to_lowercase()),
        &format!("Delete a {one}"),
        if kind == "Users" {
            "Removes the membership (the account goes with its last one)."
        } else {
            "Deletes the group and its role mapping."
        },
        delete_params,
        None,
        ("204", json!({"description": "Deleted"})),
        &["401", "403", "404", "412", "429"],
    );
    vec![
        (format!("/scim/v2/{kind}"), json!({"get": list, "post": create})),
        (format!("/scim/v2/{kind}/.search"), json!({"post": search})),
        (format!("/scim/v2/{kind}/{{id}}"), json!({"get": get, "put": put, "patch": patch, "delete": delete})),
    ]
}

fn paths() -> Vec<(String, Value)> {
    let discovery = |id: &str, summary: &str, schema: &str, params: Vec<Value>, extra: &[&str]| {
        let mut codes = vec!["401", "403", "429"];
        codes.extend_from_slice(extra);
        json!({"get": op(id, summary, "RFC 7644 section 4.", params, None, ("200", answer("The document", schema, None)), &codes)})
    };
    let mut out = vec![
        (
            "/scim/v2/ServiceProviderConfig".to_string(),
            discovery("scim_service_provider_config", "What this SCIM service supports", "ScimDiscovery", vec![], &[]),
        ),
        (
            "/scim/v2/ResourceTypes".to_string(),
            discovery("scim_resource_types", "Resource types (User, Group)", "ScimListResponse", vec![], &[]),
        ),
        (
            "/scim/v2/ResourceTypes/{name}".to_string(),
            discovery(
                "scim_resource_type",
                "One resource type",
                "ScimDiscovery",
                vec![id_param("name", "`User` or `Group`")],
                &["404"],
            ),
        ),
        (
            "/scim/v2/Schemas".to_string(),
            discovery("scim_schemas", "Schemas (User, enterprise User, Group)", "ScimListResponse", vec![], &[]),
        ),
        (
            "/scim/v2/Schemas/{schema_id}".to_string(),
            discovery(
                "scim_schema",
                "One schema",
                "ScimDiscovery",
                vec![id_param("schema_id", "The schema URN")],
                &["404"],
            ),
        ),
    ];
    out.extend(resource_paths("Users", "User"));
    out.extend(resource_paths("Groups", "Group"));
    out.push((
        "/scim/v2/.search".to_string(),
        json!({"post": op(
            "scim_search_all",
            "Search users and groups (root .search)",
            "Users, then groups, in one list.",
            vec![],
            Some(("ScimSearchRequest", search_example())),
            ("200", answer("A page", "ScimListResponse", None)),
            &["400", "401", "403", "413", "415", "429"],
        )}),
    ));
    out
}

fn text(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn multi(description: &str) -> Value {
    json!({"type": "array", "description": description, "items": {"type": "object", "properties": {
        "value": {"type": "string"}, "display": {"type": "string"}, "type": {"type": "string"}, "primary": {"type": "boolean"}
    }}})
}

fn schemas() -> Map<String, Value> {
    let meta = json!({"type": "object", "readOnly": true, "description": "`version` is the ETag", "properties": {
        "resourceType": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
        "lastModified": {"type": "string", "format": "date-time"}, "location": {"type": "string", "format": "uri"},
        "version": {"type": "string"}
    }});
    let urns = json!({"type": "array", "items": {"type": "string"}, "description": "Schema URNs"});
    let mut out = Map::new();
    out.insert("ScimUser".into(), json!({
        "type": "object",
        "description": "RFC 7643 User with the enterprise extension. Other attributes of the published schemas are kept as sent.",
        "required": ["userName"],
        "additionalProperties": true,
        "properties": {
            "schemas": urns, "id": {"type": "string", "readOnly": true}, "externalId": text("The directory's id, kept per membership"),
            "userName": text("Unique in the tenant (any case); an address is also the email, anything else the username"),
            "name": {"type": "object", "properties": {"formatted": {"type": "string"}, "givenName": {"type": "string"}, "familyName": {"type": "string"}, "middleName": {"type": "string"}, "honorificPrefix": {"type": "string"}, "honorificSuffix": {"type": "string"}}},
            "displayName": text("The member's full name"), "nickName": {"type": "string"}, "profileUrl": {"type": "string"},
            "title": text("The job title"), "userType": {"type": "string"}, "preferredLanguage": {"type": "string"},
            "locale": {"type": "string"}, "timezone": {"type": "string"},
            "active": {"type": "boolean", "description": "Enabled (true) or disabled"},
            "password": {"type": "string", "writeOnly": true, "description": "Sets the password of an identity this tenant manages (password policy applies)"},
            "emails": multi("The primary (else work, else first) is the member's email; required unless userName is an address"),
            "phoneNumbers": multi("Kept as sent"), "ims": multi("Kept as sent"), "photos": multi("Kept as sent"),
            "addresses": {"type": "array", "items": {"type": "object"}, "description": "Kept as sent"},
            "groups": {"type": "array", "readOnly": true, "items": {"type": "object", "properties": {"value": {"type": "string"}, "$ref": {"type": "string"}, "display": {"type": "string"}, "type": {"type": "string"}}}},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"type": "object", "properties": {
                "department": text("The member's department"), "employeeNumber": {"type": "string"}, "costCenter": {"type": "string"},
                "organization": {"type": "string"}, "division": {"type": "string"},
                "manager": {"type": "object", "properties": {"value": text("The manager's id (a member of this tenant)"), "$ref": {"type": "string"}}}
            }},
            "meta": meta.clone()
        }
    }));
    out.insert("ScimGroup".into(), json!({
        "type": "object", "required": ["displayName"], "additionalProperties": true,
        "description": "RFC 7643 Group: a tenant's group; its role mapping (REST API) gives directory-managed members their role.",
        "properties": {
            "schemas": urns, "id": {"type": "string", "readOnly": true}, "externalId": {"type": "string"},
            "displayName": text("Unique in the tenant (any case)"),
            "members": {"type": "array", "items": {"type": "object", "required": ["value"], "properties": {"value": text("A user id"), "$ref": {"type": "string"}, "type": {"type": "string"}}}},
            "meta": meta
        }
    }));
    out.insert("ScimListResponse".into(), json!({
        "type": "object", "required": ["schemas", "totalResults", "Resources"],
        "description": "RFC 7644 ListResponse",
        "properties": {"schemas": urns, "totalResults": {"type": "integer"}, "startIndex": {"type": "integer"}, "itemsPerPage": {"type": "integer"}, "Resources": {"type": "array", "items": {"type": "object"}}}
    }));
    out.insert("ScimPatchRequest".into(), json!({
        "type": "object", "required": ["schemas", "Operations"], "description": "RFC 7644 PatchOp; `op` in any case",
        "properties": {"schemas": urns, "Operations": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "object", "required": ["op"], "properties": {
            "op": {"type": "string", "description": "add, remove or replace (any case)"}, "path": {"type": "string"},
            "value": {"description": "The value to add or replace with: any JSON", "anyOf": [
                {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "object"},
                {"type": "array", "items": {"type": ["object", "string"]}}
            ]}
        }}}}
    }));
    out.insert("ScimSearchRequest".into(), json!({
        "type": "object", "description": "RFC 7644 SearchRequest",
        "properties": {"schemas": urns, "filter": {"type": "string"}, "sortBy": {"type": "string"}, "sortOrder": {"type": "string", "enum": ["ascending", "descending"]},
            "startIndex": {"type": "integer", "minimum": 1}, "count": {"type": "integer", "minimum": 0, "maximum": 200},
            "attributes": {"type": "array", "items": {"type": "string"}}, "excludedAttributes": {"type": "array", "items": {"type": "string"}}}
    }));
    out.insert("ScimError".into(), json!({
        "type": "object", "required": ["schemas", "status", "detail"], "description": "RFC 7644 section 3.12 error",
        "properties": {"schemas": urns, "status": text("The HTTP status, as a string"), "scimType": {"type": "string"}, "detail": text("What was wrong")},
        "example": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "scimType": "uniqueness", "detail": "userName \"ada@example.com\" is already taken by user 01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30 in this tenant"}
    }));
    out.insert("ScimDiscovery".into(), json!({
        "type": "object", "additionalProperties": true, "description": "ServiceProviderConfig, ResourceType or Schema (RFC 7643 sections 5-7)",
        "properties": {"schemas": urns, "id": {"type": "string"}, "meta": {"type": "object"}}
    }));
    out
}

/// Adds the SCIM paths, schemas, security scheme and tag to the document. Each piece is read
/// into utoipa's types on its own (the whole document does not read back: its `if`/`then` rules
/// are extensions); a piece that does not fit is logged and left out, and the unit test below
/// fails on it.
pub fn add(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::security::SecurityScheme;
    use utoipa::openapi::{PathItem, RefOr, tag::Tag};
    for (path, item) in paths() {
        match serde_json::from_value::<PathItem>(item) {
            Ok(item) => {
                doc.paths.paths.insert(path, item);
            }
            Err(e) => log::error!("SCIM path {path} does not fit the OpenAPI document: {e}"),
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in schemas() {
        match serde_json::from_value::<RefOr<Schema>>(schema) {
            Ok(schema) => {
                components.schemas.insert(name, schema);
            }
            Err(e) => log::error!("SCIM schema {name} does not fit the OpenAPI document: {e}"),
        }
    }
    let scheme = json!({"type": "http", "scheme": "bearer", "bearerFormat": "rk_scim_...", "description": "A `scim` API key (POST .../api-keys with `kind: scim`): the tenant is the key's"});
    if let Ok(scheme) = serde_json::from_value::<SecurityScheme>(scheme) {
        components.add_security_scheme("scim_key", scheme);
    }
    let tag = json!({"name": "SCIM", "description": "SCIM 2.0 provisioning for Okta and Microsoft Entra ID (RFC 7643, RFC 7644), with a `scim` key; errors are SCIM error objects"});
    if let Ok(tag) = serde_json::from_value::<Tag>(tag) {
        doc.tags.get_or_insert_with(Vec::new).push(tag);
    }
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_schema_fits() {
        for (name, schema) in super::schemas() {
            if let Err(e) =
                serde_json::from_value::<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>(schema.clone())
            {
                for (prop, p) in schema["properties"].as_object().unwrap() {
                    if let Err(e2) =
                        serde_json::from_value::<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>(p.clone())
                    {
                        eprintln!("{name}.{prop}: {e2}");
                    }
                }
                panic!("{name}: {e}");
            }
        }
        for (path, item) in super::paths() {
            if let Err(e) = serde_json::from_value::<utoipa::openapi::PathItem>(item) {
                panic!("{path}: {e}");
            }
        }
    }

    #[test]
    fn the_scim_section_fits_the_document() {
        let v = serde_json::to_value(crate::api::openapi_document()).unwrap();
        assert!(v["paths"]["/scim/v2/Users"]["get"].is_object());
        assert!(v["components"]["schemas"]["ScimUser"].is_object());
        // Nothing of a schema is lost on the way in.
        assert_eq!(v["components"]["schemas"]["ScimPatchRequest"]["properties"]["Operations"]["maxItems"], 1000);
    }
}
