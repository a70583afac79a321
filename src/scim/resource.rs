//! The canonical form of a SCIM resource and the conversions into and out of it.
//!
//! Canonical form: a JSON object whose keys are the schema's attribute names in their exact
//! case; core and common attributes at the top level; enterprise attributes inside the object
//! under the key `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`; `schemas` listing
//! the core URN and the extension URN when that object is there; no nulls, empty strings, empty
//! arrays or empty objects (RFC 7643 section 2.5 treats them as unassigned); booleans as JSON
//! booleans; multi-valued attributes as arrays; `manager` as an object.
//!
//! `canonicalize` turns a POST/PUT body into it, `project` applies `attributes` and
//! `excludedAttributes` to it, and `coerce` (shared with `patch`) checks one value against its
//! attribute definition. Strings are limited to `MAX_STRING_CHARS` characters, a bound well
//! above any real name, address or id that keeps one attribute from carrying a whole document.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::evaluate::is_present;
use super::filter::{AttrPath, parse_attr_path};
use super::schema::{self, AttrDef, AttrType, Mutability, Resolved, ResourceKind, Returned};

/// The longest string accepted in any attribute, in characters.
pub const MAX_STRING_CHARS: usize = 1024;

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(label: &str, expected: &str, got: &Value) -> ScimError {
    ScimError::invalid_value(format!("{label} must be {expected}, not {}", json_type(got)))
}

/// Checks `value` against the definition of attribute `def` (called `label` in errors) and
/// returns it in canonical form, or `None` when it is unassigned (null, "", [], an object with
/// nothing known in it). A multi-valued attribute takes an array, or a single value as a
/// one-element array. Errors are 400 `invalidValue` naming `label`.
pub(crate) fn coerce(def: &'static AttrDef, value: &Value, label: &str) -> Result<Option<Value>, ScimError> {
    if !def.multi_valued {
        return coerce_one(def, value, label);
    }
    let items: Vec<Value> = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| coerce_one(def, item, &format!("{label}[{i}]")))
            .filter_map(Result::transpose)
            .collect::<Result<_, _>>()?,
        single => coerce_one(def, single, label)?.into_iter().collect(),
    };
    if items.iter().filter(|item| is_primary(item)).count() > 1 {
        return Err(ScimError::invalid_value(format!("{label}: primary is true on more than one value")));
    }
    Ok((!items.is_empty()).then_some(Value::Array(items)))
}

pub(crate) fn is_primary(item: &Value) -> bool {
    item.get("primary").and_then(Value::as_bool) == Some(true)
}

/// One value of attribute `def`, ignoring whether `def` is multi-valued.
pub(crate) fn coerce_one(def: &'static AttrDef, value: &Value, label: &str) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    match def.kind {
        AttrType::String | AttrType::Reference => {
            let Value::String(s) = value else {
                return Err(wrong_type(label, "a string", value));
            };
            if s.chars().count() > MAX_STRING_CHARS {
                return Err(ScimError::invalid_value(format!("{label} is longer than {MAX_STRING_CHARS} characters")));
            }
            Ok((!s.is_empty()).then(|| value.clone()))
        }
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(Some(value.clone())),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true.into())),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false.into())),
            _ => Err(wrong_type(label, "a boolean (true or false)", value)),
        },
        AttrType::DateTime => match value {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(Some(value.clone())),
            _ => Err(ScimError::invalid_value(format!(
                "{label} must be an RFC 3339 date and time such as \"2024-05-13T04:42:34Z\""
            ))),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(value.clone())),
            _ => Err(wrong_type(label, "an integer", value)),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(Some(value.clone())),
            _ => Err(wrong_type(label, "a number", value)),
        },
        AttrType::Complex => coerce_complex(def, value, label),
    }
}

fn coerce_complex(def: &'static AttrDef, value: &Value, label: &str) -> Result<Option<Value>, ScimError> {
    let obj = match value {
        Value::Object(obj) => obj,
        // A bare id for a complex attribute with a `value` (Entra's `manager`).
        Value::String(_) if def.sub("value").is_some() => {
            let mut obj = Map::new();
            obj.insert("value".into(), value.clone());
            return coerce_complex(def, &Value::Object(obj), label);
        }
        // One object in an array for a single-valued attribute (Entra's
        // `{"op":"Add","path":"manager","value":[{"value":"<id>"}]}`).
        Value::Array(items) if items.len() == 1 && !def.multi_valued => return coerce_complex(def, &items[0], label),
        _ => return Err(wrong_type(label, "an object", value)),
    };
    let mut out = Map::new();
    for (key, v) in obj {
        let Some(sub) = def.sub(key) else { continue };
        if sub.mutability == Mutability::ReadOnly && def.mutability != Mutability::ReadOnly {
            continue;
        }
        if let Some(v) = coerce_one(sub, v, &format!("{label}.{}", sub.name))? {
            out.insert(sub.name.into(), v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// A key of a request object, resolved: a plain, dotted or URN-qualified attribute name, or the
/// URN key of an extension whose object holds more of them.
pub(crate) fn entries(kind: ResourceKind, obj: &Map<String, Value>) -> Result<Vec<(Resolved, &Value)>, ScimError> {
    let mut out = Vec::new();
    for (key, value) in obj {
        let Ok(path) = parse_attr_path(key) else {
            continue;
        };
        if let Some(urn) = schema::whole_schema(kind, &path) {
            let Value::Object(inner) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(wrong_type(urn, "an object", value));
            };
            for (key, value) in inner {
                let Ok(path) = parse_attr_path(key) else {
                    continue;
                };
                if path.urn.is_none()
                    && let Some(found) = schema::find(kind, &path.with_urn(urn))
                {
                    out.push((found, value));
                }
            }
        } else if let Some(found) = schema::find(kind, &path) {
            out.push((found, value));
        }
    }
    Ok(out)
}

/// Whether a client may write the attribute the path ends at.
pub(crate) fn writable(found: &Resolved) -> bool {
    found.attr.mutability != Mutability::ReadOnly && found.sub.is_none_or(|s| s.mutability != Mutability::ReadOnly)
}

/// Runs `f` on the object in `slot`, making `slot` an empty object first if it is not one.
pub(crate) fn with_object<R>(slot: &mut Value, f: impl FnOnce(&mut Map<String, Value>) -> R) -> R {
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(obj) => f(obj),
        // Not reached: `slot` was made an object above.
        _ => f(&mut Map::new()),
    }
}

/// Runs `f` on the object that holds `found`'s attribute: the resource, or its extension
/// object (created when absent).
pub(crate) fn with_container<R>(
    resource: &mut Map<String, Value>,
    found: &Resolved,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    if found.is_extension() { with_object(resource.entry(found.schema).or_insert(Value::Null), f) } else { f(resource) }
}

/// Runs `f` on the array in `slot`, making `slot` an empty array first if it is not one.
pub(crate) fn with_array<R>(slot: &mut Value, f: impl FnOnce(&mut Vec<Value>) -> R) -> R {
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(items) => f(items),
        // Not reached: `slot` was made an array above.
        _ => f(&mut Vec::new()),
    }
}

/// Sets the attribute or sub-attribute `found` to `value` with replace semantics (RFC 7644
/// section 3.5.2.3): a simple or multi-valued attribute is replaced whole, a complex one has the
/// given sub-attributes replaced and the others kept, a sub-attribute of a multi-valued
/// attribute is set in every value (in a new one when there is none); null clears.
pub(crate) fn replace_attr(
    resource: &mut Map<String, Value>,
    found: &Resolved,
    value: &Value,
    label: &str,
) -> Result<(), ScimError> {
    let attr = found.attr;
    let coerced = match found.sub {
        None => coerce(attr, value, label)?,
        Some(sub) => coerce_one(sub, value, label)?,
    };
    with_container(resource, found, |container| match found.sub {
        None if attr.kind == AttrType::Complex && !attr.multi_valued => match coerced {
            Some(Value::Object(subs)) => {
                with_object(container.entry(attr.name).or_insert(Value::Null), |obj| obj.extend(subs));
            }
            _ if value.is_null() => {
                container.remove(attr.name);
            }
            // An object with nothing known in it changes nothing.
            _ => {}
        },
        None => match coerced {
            Some(v) => {
                container.insert(attr.name.into(), v);
            }
            None => {
                container.remove(attr.name);
            }
        },
        Some(sub) if attr.multi_valued => {
            with_array(container.entry(attr.name).or_insert(Value::Null), |items| {
                if items.is_empty() {
                    items.push(Value::Object(Map::new()));
                }
                for item in items.iter_mut() {
                    set_sub(item, sub.name, coerced.clone());
                }
            });
        }
        Some(sub) => set_sub(container.entry(attr.name).or_insert(Value::Null), sub.name, coerced),
    });
    Ok(())
}

/// Sets (or with `None` removes) `sub` in the object `item`, making it an object if needed.
pub(crate) fn set_sub(item: &mut Value, sub: &str, value: Option<Value>) {
    if !item.is_object() {
        *item = Value::Object(Map::new());
    }
    if let Value::Object(obj) = item {
        match value {
            Some(v) => {
                obj.insert(sub.into(), v);
            }
            None => {
                obj.remove(sub);
            }
        }
    }
}

/// Removes unassigned values (null, empty strings, arrays and objects) everywhere, and sets
/// `schemas` to the core URN plus the extensions present.
pub(crate) fn tidy(kind: ResourceKind, resource: &mut Map<String, Value>) {
    fn keep(v: &mut Value) -> bool {
        match v {
            Value::Object(obj) => {
                obj.retain(|_, v| keep(v));
                !obj.is_empty()
            }
            Value::Array(items) => {
                items.retain_mut(keep);
                !items.is_empty()
            }
            _ => is_present(v),
        }
    }
    resource.retain(|k, v| k == "schemas" || keep(v));
    let mut schemas = vec![Value::from(kind.core_urn())];
    for (urn, _) in kind.extensions() {
        if resource.contains_key(*urn) {
            schemas.push(Value::from(*urn));
        }
    }
    resource.insert("schemas".into(), Value::Array(schemas));
}

/// The first required attribute `resource` lacks, as a 400 `invalidValue`.
pub(crate) fn check_required(kind: ResourceKind, resource: &Map<String, Value>) -> Result<(), ScimError> {
    match kind.core_attrs().iter().find(|d| d.required && !resource.get(d.name).is_some_and(is_present)) {
        Some(def) => Err(ScimError::invalid_value(format!("{} is required and must not be empty", def.name))),
        None => Ok(()),
    }
}

/// Turns a POST or PUT body into canonical form: keys in any case, URN-qualified (a flattened
/// `urn:...:enterprise:2.0:User:department` or the extension's URN key with an object) or
/// dotted (`name.givenName`); booleans also as the strings "True"/"False"; `manager` also as a
/// bare id; a single object for a multi-valued attribute. Read-only attributes (`id`, `meta`,
/// `groups`, `manager.displayName`) and attributes outside the schema are ignored, as RFC 7643
/// section 7 says. Errors: 400 `invalidSyntax` when the body is not an object, 400
/// `invalidValue` naming the attribute for a wrong type, an over-long string or a missing
/// required attribute (`userName`, a group's `displayName`).
pub fn canonicalize(kind: ResourceKind, input: &Value) -> Result<Value, ScimError> {
    let Value::Object(obj) = input else {
        return Err(ScimError::invalid_syntax(format!(
            "the {} must be a JSON object, not {}",
            kind.name(),
            json_type(input)
        )));
    };
    let mut out = Map::new();
    for (found, value) in entries(kind, obj)? {
        if writable(&found) {
            replace_attr(&mut out, &found, value, &found.display())?;
        }
    }
    tidy(kind, &mut out);
    check_required(kind, &out)?;
    Ok(Value::Object(out))
}

/// Parses an `attributes` or `excludedAttributes` parameter: names separated by commas,
/// whitespace allowed around them, URN-qualified or dotted. Errors are 400 `invalidValue`.
pub fn parse_attribute_list(s: &str) -> Result<Vec<AttrPath>, ScimError> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            parse_attr_path(item)
                .map_err(|e| ScimError::invalid_value(format!("attribute list item '{item}': {}", e.detail)))
        })
        .collect()
}

/// Which part of an attribute a list names.
enum Named {
    Nothing,
    Whole,
    Subs(Vec<&'static str>),
}

fn named(kind: ResourceKind, list: &[AttrPath], schema_urn: &str, attr: &AttrDef) -> Named {
    let mut subs = Vec::new();
    for path in list {
        if schema::whole_schema(kind, path) == Some(schema_urn) {
            return Named::Whole;
        }
        let Some(found) = schema::find(kind, path) else {
            continue;
        };
        if found.schema != schema_urn || found.attr.name != attr.name {
            continue;
        }
        match found.sub {
            None => return Named::Whole,
            Some(sub) => subs.push(sub.name),
        }
    }
    if subs.is_empty() { Named::Nothing } else { Named::Subs(subs) }
}

/// `value` with only the sub-attributes `keep` says to keep (each value of a multi-valued one).
fn filter_subs(value: &Value, keep: &dyn Fn(&str) -> bool) -> Value {
    match value {
        Value::Object(obj) => {
            Value::Object(obj.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| filter_subs(v, keep)).collect()),
        other => other.clone(),
    }
}

fn project_attr(
    kind: ResourceKind,
    schema_urn: &str,
    attr: &AttrDef,
    value: &Value,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Option<Value> {
    match attr.returned {
        Returned::Never => return None,
        Returned::Always => return Some(value.clone()),
        Returned::Default | Returned::Request => {}
    }
    let mut value = match named(kind, attributes, schema_urn, attr) {
        Named::Whole => value.clone(),
        Named::Subs(subs) => filter_subs(value, &|k| subs.iter().any(|s| s == &k)),
        Named::Nothing if attributes.is_empty() && attr.returned == Returned::Default => value.clone(),
        Named::Nothing => return None,
    };
    match named(kind, excluded, schema_urn, attr) {
        Named::Whole => return None,
        Named::Subs(subs) => value = filter_subs(&value, &|k| !subs.iter().any(|s| s == &k)),
        Named::Nothing => {}
    }
    Some(value)
}

/// Applies `attributes` and `excludedAttributes` (RFC 7644 section 3.9) to a canonical resource:
/// `returned: always` attributes (`id`) and `schemas` are always kept, `returned: never` ones
/// (`password`) never appear; a non-empty `attributes` keeps only what it names (a sub-attribute
/// keeps its parent with only that sub-attribute); `excluded` then removes what it names. Names
/// are case-insensitive and may carry their schema URN; unknown names are ignored. Keys the
/// schema does not know are kept only when `attributes` is empty.
pub fn project(kind: ResourceKind, resource: &Value, attributes: &[AttrPath], excluded: &[AttrPath]) -> Value {
    let Value::Object(obj) = resource else {
        return resource.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        if key == "schemas" {
            out.insert(key.clone(), value.clone());
            continue;
        }
        if let Some((urn, defs)) = kind.extensions().iter().find(|(urn, _)| urn.eq_ignore_ascii_case(key)) {
            let Value::Object(inner) = value else { continue };
            let projected: Map<String, Value> = inner
                .iter()
                .filter_map(|(k, v)| {
                    let def = defs.iter().find(|d| d.name.eq_ignore_ascii_case(k))?;
                    let v = project_attr(kind, urn, def, v, attributes, excluded)?;
                    Some((k.clone(), v))
                })
                .collect();
            if !projected.is_empty() {
                out.insert(key.clone(), Value::Object(projected));
            }
            continue;
        }
        match schema::find(kind, &AttrPath::new(key.as_str())) {
            Some(found) => {
                if let Some(v) = project_attr(kind, found.schema, found.attr, value, attributes, excluded) {
                    out.insert(key.clone(), v);
                }
            }
            None if attributes.is_empty() => {
                out.insert(key.clone(), value.clone());
            }
            None => {}
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::{URN_ENTERPRISE_USER, URN_GROUP, URN_USER};

    const ENT: &str = URN_ENTERPRISE_USER;

    fn canon(v: Value) -> Value {
        canonicalize(ResourceKind::User, &v).unwrap()
    }
    fn canon_err(v: Value) -> ScimError {
        let e = canonicalize(ResourceKind::User, &v).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some("invalidValue")), "{}", e.detail);
        e
    }

    #[test]
    fn canonicalizes_the_rfc_enterprise_user() {
        let body = json!({
            "schemas": [URN_USER, ENT],
            "id": "client-chosen",
            "externalId": "701984",
            "USERNAME": "bjensen@example.com",
            "name": {"formatted": "Ms. Barbara J Jensen, III", "FamilyName": "Jensen", "givenName": "Barbara", "nickname": "ignored"},
            "displayName": "Babs Jensen",
            "active": "True",
            "password": "t1meMa$heen",
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": "true"},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "groups": [{"value": "e9e30dba", "display": "Tour Guides"}],
            "meta": {"resourceType": "User"},
            "entitlements": [{"value": "x"}],
            "x-custom": 1,
            ENT: {
                "employeeNumber": "701984",
                "Department": "Tour Operations",
                "manager": {"value": "26118915", "displayName": "John Smith", "$ref": "../Users/26118915"}
            }
        });
        assert_eq!(
            canon(body),
            json!({
                "schemas": [URN_USER, ENT],
                "externalId": "701984",
                "userName": "bjensen@example.com",
                "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara"},
                "displayName": "Babs Jensen",
                "active": true,
                "password": "t1meMa$heen",
                "emails": [
                    {"value": "bjensen@example.com", "type": "work", "primary": true},
                    {"value": "babs@jensen.org", "type": "home"}
                ],
                ENT: {
                    "employeeNumber": "701984",
                    "department": "Tour Operations",
                    "manager": {"value": "26118915", "$ref": "../Users/26118915"}
                }
            })
        );
    }

    #[test]
    fn canonicalizes_entra_style_flat_keys() {
        let body = json!({
            "schemas": [URN_USER, ENT],
            "userName": "Test_User@contoso.com",
            "active": "False",
            "emails": {"value": "Test_User@contoso.com", "type": "work", "primary": true},
            "name.givenName": "Test",
            "urn:ietf:params:scim:schemas:core:2.0:User:title": "Engineer",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "26118915-6090-4610-87e4-49d8ca9f808d",
            "displayName": "",
            "nickName": null
        });
        assert_eq!(
            canon(body),
            json!({
                "schemas": [URN_USER, ENT],
                "userName": "Test_User@contoso.com",
                "active": false,
                "emails": [{"value": "Test_User@contoso.com", "type": "work", "primary": true}],
                "name": {"givenName": "Test"},
                "title": "Engineer",
                ENT: {"department": "Sales", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}
            })
        );
    }

    #[test]
    fn rejects_wrong_types_naming_the_attribute() {
        let base = |k: &str, v: Value| {
            let mut body = json!({"userName": "a@b.c", "emails": [{"value": "a@b.c"}]});
            body[k] = v;
            body
        };
        assert_eq!(
            canon_err(base("active", json!({"x": 1}))).detail,
            "active must be a boolean (true or false), not an object"
        );
        assert_eq!(
            canon_err(base("active", json!("yes"))).detail,
            "active must be a boolean (true or false), not a string"
        );
        assert_eq!(
            canon_err(base("emails", json!([{"value": 5}]))).detail,
            "emails[0].value must be a string, not a number"
        );
        assert_eq!(canon_err(base("emails", json!(true))).detail, "emails must be an object, not a boolean");
        assert_eq!(canon_err(base("name", json!("Bob"))).detail, "name must be an object, not a string");
        assert_eq!(canon_err(base("title", json!("x".repeat(1025)))).detail, "title is longer than 1024 characters");
        canon(base("title", json!("é".repeat(1024))));
        assert_eq!(canon_err(base(ENT, json!("Sales"))).detail, format!("{ENT} must be an object, not a string"));
        assert_eq!(
            canon_err(base(&format!("{ENT}:manager"), json!(7))).detail,
            format!("{ENT}:manager must be an object, not a number")
        );
        assert_eq!(
            canon_err(base("emails", json!([{"value": "a", "primary": true}, {"value": "b", "primary": true}]))).detail,
            "emails: primary is true on more than one value"
        );
        assert_eq!(canon_err(json!({"userName": ""})).detail, "userName is required and must not be empty");
        assert_eq!(canon_err(json!({"displayName": "x"})).detail, "userName is required and must not be empty");
        let e = canonicalize(ResourceKind::User, &json!([1])).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidSyntax"));
    }

    #[test]
    fn canonicalizes_groups() {
        let body = json!({
            "schemas": [URN_GROUP],
            "id": "ignored",
            "displayname": "Tour Guides",
            "members": [
                {"value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "display": "Babs", "type": "User"},
                "902c246b"
            ]
        });
        assert_eq!(
            canonicalize(ResourceKind::Group, &body).unwrap(),
            json!({
                "schemas": [URN_GROUP],
                "displayName": "Tour Guides",
                "members": [
                    {"value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "type": "User"},
                    {"value": "902c246b"}
                ]
            })
        );
        let e = canonicalize(ResourceKind::Group, &json!({"members": []})).unwrap_err();
        assert_eq!(e.detail, "displayName is required and must not be empty");
    }

    fn list(s: &str) -> Vec<AttrPath> {
        parse_attribute_list(s).unwrap()
    }

    fn stored_user() -> Value {
        json!({
            "schemas": [URN_USER, ENT],
            "id": "42",
            "userName": "bjensen",
            "password": "never shown",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "a@b.c", "type": "work"}, {"value": "d@e.f", "type": "home"}],
            "meta": {"resourceType": "User", "version": "W/\"1\""},
            ENT: {"department": "Ops", "manager": {"value": "7", "displayName": "Boss"}}
        })
    }

    #[test]
    fn parses_attribute_lists() {
        assert_eq!(
            list(" userName , name.givenName,,urn:ietf:params:scim:schemas:core:2.0:User:emails "),
            vec![
                AttrPath::new("userName"),
                AttrPath::new("name").with_sub("givenName"),
                AttrPath::new("emails").with_urn(URN_USER),
            ]
        );
        assert!(list("").is_empty());
        let e = parse_attribute_list("userName,emails[type eq \"work\"]").unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
        assert!(e.detail.starts_with("attribute list item 'emails[type eq \"work\"]'"));
    }

    #[test]
    fn projects_attributes() {
        let user = stored_user();
        let p = |a: &str, e: &str| project(ResourceKind::User, &user, &list(a), &list(e));
        // default: everything but password
        let mut expected = user.clone();
        expected.as_object_mut().unwrap().remove("password");
        assert_eq!(p("", ""), expected);
        assert_eq!(p("USERNAME,nope", ""), json!({"schemas": [URN_USER, ENT], "id": "42", "userName": "bjensen"}));
        assert_eq!(
            p("emails.value,name.familyName,password", ""),
            json!({
                "schemas": [URN_USER, ENT], "id": "42",
                "name": {"familyName": "Jensen"},
                "emails": [{"value": "a@b.c"}, {"value": "d@e.f"}]
            })
        );
        assert_eq!(
            p(&format!("{ENT}:manager.value"), ""),
            json!({"schemas": [URN_USER, ENT], "id": "42", ENT: {"manager": {"value": "7"}}})
        );
        assert_eq!(
            p(ENT, ""),
            json!({"schemas": [URN_USER, ENT], "id": "42", ENT: {"department": "Ops", "manager": {"value": "7", "displayName": "Boss"}}})
        );
        assert_eq!(
            p(
                "",
                "id,meta,emails.type,name,schemas,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
            ),
            json!({
                "schemas": [URN_USER, ENT], "id": "42", "userName": "bjensen",
                "emails": [{"value": "a@b.c"}, {"value": "d@e.f"}],
                ENT: {"manager": {"value": "7", "displayName": "Boss"}}
            })
        );
    }

    #[test]
    fn projects_groups_without_members() {
        let group = json!({
            "schemas": [URN_GROUP], "id": "g", "displayName": "Ops",
            "members": [{"value": "1"}], "meta": {"resourceType": "Group"}
        });
        assert_eq!(
            project(ResourceKind::Group, &group, &[], &list("members")),
            json!({"schemas": [URN_GROUP], "id": "g", "displayName": "Ops", "meta": {"resourceType": "Group"}})
        );
    }
}
