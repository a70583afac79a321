//! What a parsed `Filter` means: `Filter::matches` evaluates it over a resource in canonical
//! form (as `schema::canonicalize` and `store::scim` produce it), and `validate` checks it
//! against the schema before anything runs it. Both resolve names through `schema::find`, so a
//! filter means the same here as in the SQL that `store::scim` writes for it: multi-valued
//! attributes match when any value matches, strings compare case-insensitively unless the
//! attribute is `caseExact`, dateTimes compare as instants, `ne` is the negation of `eq`
//! (an absent attribute is `ne` anything), `eq null` means absent and `pr` present and not empty.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttrPath, CompValue, CompareOp, Filter};
use super::schema::{self, AttrDef, AttrType, ResourceKind, Returned};

impl Filter {
    /// Whether the canonical `resource` of type `kind` satisfies this filter. Attributes the
    /// schema does not know match nothing (run `validate` first to reject them).
    pub fn matches(&self, kind: ResourceKind, resource: &Value) -> bool {
        eval(self, Scope::Resource(kind), resource)
    }

    /// Whether one element of the multi-valued (or complex) attribute `parent` satisfies this
    /// value filter (the part inside `emails[...]`).
    pub fn matches_element(&self, parent: &'static AttrDef, element: &Value) -> bool {
        eval(self, Scope::Element(parent), element)
    }
}

/// Checks that every attribute in `filter` exists in `kind`'s schemas, that each operator fits
/// its attribute's type and that nothing unfilterable (`password`) is used. Errors are 400
/// `invalidFilter` naming the attribute.
pub fn validate(kind: ResourceKind, filter: &Filter) -> Result<(), ScimError> {
    check(filter, Scope::Resource(kind))
}

/// `validate` for a value filter over the sub-attributes of `parent`.
pub fn validate_element(parent: &'static AttrDef, filter: &Filter) -> Result<(), ScimError> {
    check(filter, Scope::Element(parent))
}

#[derive(Clone, Copy)]
enum Scope {
    Resource(ResourceKind),
    Element(&'static AttrDef),
}

/// Where a path leads: the attribute (inside the extension object when `extension` is set) and
/// its sub-attribute.
struct Target {
    extension: Option<&'static str>,
    attr: &'static AttrDef,
    sub: Option<&'static AttrDef>,
}

fn resolve(scope: Scope, path: &AttrPath) -> Option<Target> {
    match scope {
        Scope::Resource(kind) => {
            let found = schema::find(kind, path)?;
            Some(Target { extension: found.is_extension().then_some(found.schema), attr: found.attr, sub: found.sub })
        }
        Scope::Element(parent) => {
            if path.urn.is_some() || path.sub.is_some() {
                return None;
            }
            Some(Target { extension: None, attr: parent.sub(&path.name)?, sub: None })
        }
    }
}

/// The value of `name` in `obj`: the canonical key first, then any case.
pub(crate) fn get_ci<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The attribute's own value (an array for multi-valued ones), if the resource has it.
fn top<'v>(target: &Target, root: &'v Value) -> Option<&'v Value> {
    let mut container = root.as_object()?;
    if let Some(ext) = target.extension {
        container = get_ci(container, ext)?.as_object()?;
    }
    get_ci(container, target.attr.name)
}

/// The attribute's values as a list: the elements of a multi-valued attribute, else the value.
fn values<'v>(target: &Target, root: &'v Value) -> Vec<&'v Value> {
    match top(target, root) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if target.attr.multi_valued => items.iter().collect(),
        Some(v) => vec![v],
    }
}

/// Present: not null, not an empty string, array or object.
pub(crate) fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        _ => true,
    }
}

/// The leaves a comparison looks at and the definition that types them: a sub-attribute of each
/// value, or each value itself (a complex value through its `value` sub-attribute).
fn leaves<'v>(target: &Target, root: &'v Value) -> Option<(&'static AttrDef, Vec<&'v Value>)> {
    let def = match target.sub {
        Some(sub) => sub,
        None => target.attr.comparable()?,
    };
    let key = (target.attr.kind == AttrType::Complex).then_some(def.name);
    let leaves = values(target, root)
        .into_iter()
        .filter_map(|v| match key {
            Some(key) => v.as_object().and_then(|o| get_ci(o, key)),
            None => Some(v),
        })
        .collect();
    Some((def, leaves))
}

fn eval(filter: &Filter, scope: Scope, value: &Value) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, scope, value) && eval(b, scope, value),
        Filter::Or(a, b) => eval(a, scope, value) || eval(b, scope, value),
        Filter::Not(inner) => !eval(inner, scope, value),
        Filter::Present(path) => resolve(scope, path).is_some_and(|t| present(&t, value)),
        Filter::Compare(path, op, literal) => {
            let Some(target) = resolve(scope, path) else {
                return false;
            };
            match (op, literal) {
                (CompareOp::Eq, CompValue::Null) => !present(&target, value),
                (CompareOp::Ne, CompValue::Null) => present(&target, value),
                (_, CompValue::Null) => false,
                (CompareOp::Ne, _) => !any_leaf(&target, value, CompareOp::Eq, literal),
                _ => any_leaf(&target, value, *op, literal),
            }
        }
        Filter::ValuePath(path, inner) => {
            let Some(target) = resolve(scope, path) else {
                return false;
            };
            if target.sub.is_some() || target.attr.kind != AttrType::Complex {
                return false;
            }
            values(&target, value).into_iter().any(|element| eval(inner, Scope::Element(target.attr), element))
        }
    }
}

fn present(target: &Target, root: &Value) -> bool {
    match target.sub {
        None => top(target, root).is_some_and(is_present),
        Some(sub) => values(target, root)
            .into_iter()
            .any(|v| v.as_object().and_then(|o| get_ci(o, sub.name)).is_some_and(is_present)),
    }
}

fn any_leaf(target: &Target, root: &Value, op: CompareOp, literal: &CompValue) -> bool {
    leaves(target, root).is_some_and(|(def, leaves)| leaves.into_iter().any(|leaf| compare(def, leaf, op, literal)))
}

fn date_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

fn ordering_holds(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare_strings(op: CompareOp, actual: &str, wanted: &str, case_exact: bool) -> bool {
    let (actual, wanted) = if case_exact {
        (actual.to_owned(), wanted.to_owned())
    } else {
        (actual.to_lowercase(), wanted.to_lowercase())
    };
    match op {
        CompareOp::Co => actual.contains(&wanted),
        CompareOp::Sw => actual.starts_with(&wanted),
        CompareOp::Ew => actual.ends_with(&wanted),
        _ => ordering_holds(op, actual.cmp(&wanted)),
    }
}

/// A boolean literal, also written as the string `"true"`/`"false"` (any case).
pub(crate) fn literal_bool(literal: &CompValue) -> Option<bool> {
    match literal {
        CompValue::Bool(b) => Some(*b),
        CompValue::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
        CompValue::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn compare(def: &AttrDef, actual: &Value, op: CompareOp, literal: &CompValue) -> bool {
    match def.kind {
        AttrType::String | AttrType::Reference => match (actual, literal) {
            (Value::String(a), CompValue::Str(w)) => compare_strings(op, a, w, def.case_exact),
            _ => false,
        },
        AttrType::DateTime => match (actual, literal) {
            (Value::String(a), CompValue::Str(w)) if op.is_substring() => compare_strings(op, a, w, false),
            (Value::String(a), CompValue::Str(w)) => match (date_time(a), date_time(w)) {
                (Some(a), Some(w)) => ordering_holds(op, a.cmp(&w)),
                _ => false,
            },
            _ => false,
        },
        AttrType::Boolean => {
            op == CompareOp::Eq && actual.as_bool().is_some() && actual.as_bool() == literal_bool(literal)
        }
        AttrType::Integer | AttrType::Decimal => match (actual.as_f64(), literal) {
            (Some(a), CompValue::Num(w)) if !op.is_substring() => {
                w.as_f64().and_then(|w| a.partial_cmp(&w)).is_some_and(|ord| ordering_holds(op, ord))
            }
            _ => false,
        },
        AttrType::Complex => false,
    }
}

fn check(filter: &Filter, scope: Scope) -> Result<(), ScimError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            check(a, scope)?;
            check(b, scope)
        }
        Filter::Not(inner) => check(inner, scope),
        Filter::Present(path) => resolve_for_filter(scope, path).map(|_| ()),
        Filter::Compare(path, op, literal) => {
            let target = resolve_for_filter(scope, path)?;
            let def = match target.sub {
                Some(sub) => sub,
                None => target.attr.comparable().ok_or_else(|| {
                    ScimError::invalid_filter(format!(
                        "'{path}' is complex; compare one of its sub-attributes ({})",
                        sub_names(target.attr)
                    ))
                })?,
            };
            check_comparison(path, def, *op, literal)
        }
        Filter::ValuePath(path, inner) => {
            let target = resolve_for_filter(scope, path)?;
            if target.sub.is_some() || target.attr.kind != AttrType::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "'{path}' has no sub-attributes to filter with '[...]'"
                )));
            }
            check(inner, Scope::Element(target.attr))
        }
    }
}

fn sub_names(def: &AttrDef) -> String {
    def.sub_attributes.iter().map(|s| format!("{}.{}", def.name, s.name)).collect::<Vec<_>>().join(", ")
}

fn resolve_for_filter(scope: Scope, path: &AttrPath) -> Result<Target, ScimError> {
    let target = resolve(scope, path).ok_or_else(|| {
        let hint = match scope {
            Scope::Element(parent) => format!(
                "; inside '{}[...]' use one of {}",
                parent.name,
                parent.sub_attributes.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
            ),
            Scope::Resource(ResourceKind::User)
                if path.urn.is_none()
                    && schema::ENTERPRISE_USER_ATTRS.iter().any(|d| d.name.eq_ignore_ascii_case(&path.name)) =>
            {
                format!(
                    "; enterprise attributes are written with their schema, as '{}:{path}'",
                    schema::URN_ENTERPRISE_USER
                )
            }
            Scope::Resource(_) => String::new(),
        };
        ScimError::invalid_filter(format!("unknown attribute '{path}'{hint}"))
    })?;
    let end = target.sub.unwrap_or(target.attr);
    if target.attr.returned == Returned::Never || end.returned == Returned::Never {
        return Err(ScimError::invalid_filter(format!("'{path}' is never returned and cannot be used in a filter")));
    }
    Ok(target)
}

fn check_comparison(path: &AttrPath, def: &AttrDef, op: CompareOp, literal: &CompValue) -> Result<(), ScimError> {
    let op_name = op.as_str();
    let fail = |why: &str| Err(ScimError::invalid_filter(format!("'{path} {op_name} {literal}': {why}")));
    if *literal == CompValue::Null {
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(()),
            _ => fail("null can only be compared with eq or ne"),
        };
    }
    match def.kind {
        AttrType::Boolean => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return fail("a boolean can only be compared with eq or ne");
            }
            if literal_bool(literal).is_none() {
                return fail("the attribute is a boolean; compare it with true or false");
            }
        }
        AttrType::String | AttrType::Reference => {
            if !matches!(literal, CompValue::Str(_)) {
                return fail("the attribute is a string; compare it with a string in double quotes");
            }
        }
        AttrType::DateTime => match literal {
            CompValue::Str(s) if op.is_substring() || date_time(s).is_some() => {}
            CompValue::Str(_) => {
                return fail(
                    "the attribute is a dateTime; compare it with an RFC 3339 time such as \"2024-05-13T04:42:34Z\"",
                );
            }
            _ => return fail("the attribute is a dateTime; compare it with a string in double quotes"),
        },
        AttrType::Integer | AttrType::Decimal => {
            if op.is_substring() {
                return fail("a number cannot be compared with co, sw or ew");
            }
            if !matches!(literal, CompValue::Num(_)) {
                return fail("the attribute is a number; compare it with a number");
            }
        }
        AttrType::Complex => return fail("a complex attribute cannot be compared"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::filter::parse_filter;

    fn user() -> Value {
        json!({
            "schemas": [schema::URN_USER, schema::URN_ENTERPRISE_USER],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Bjensen",
            "userName": "bjensen@example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "title": "Tour Guide",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z",
                "version": "W/\"3694e05e9dff591\""
            },
            schema::URN_ENTERPRISE_USER: {
                "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            }
        })
    }

    fn matches(filter: &str) -> bool {
        let filter = parse_filter(filter).unwrap();
        validate(ResourceKind::User, &filter).unwrap();
        filter.matches(ResourceKind::User, &user())
    }

    #[test]
    fn evaluates_over_a_canonical_user() {
        let yes = [
            r#"userName eq "BJENSEN@example.com""#,
            r#"USERNAME sw "bj""#,
            r#"name.familyName co "ens""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName ew "ara""#,
            "title pr",
            "active eq true",
            r#"active eq "True""#,
            "active ne false",
            r#"emails.type eq "home""#,
            r#"emails co "jensen.org""#,
            r#"emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[TYPE eq "WORK" and primary eq true]"#,
            r#"meta.lastModified gt "2011-05-13T00:00:00Z""#,
            r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"meta.created lt "2011-01-01T00:00:00Z""#,
            r#"externalId eq "Bjensen""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
            "nickName eq null",
            "userName ne null",
            r#"nickName ne "x""#,
            r#"not (userName eq "other") and (title pr or nickName pr)"#,
            r#"userName gt "a""#,
        ];
        for f in yes {
            assert!(matches(f), "{f}");
        }
        let no = [
            r#"userName eq "bjensen""#,
            r#"externalId eq "bjensen""#,
            "nickName pr",
            "active eq false",
            r#"emails[type eq "work" and value co "@jensen.org"]"#,
            r#"emails.type eq "other""#,
            r#"emails.type ne "home""#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T06:42:34+02:00""#,
            r#"title pr and nickName pr"#,
            "userName eq null",
            "active gt false",
        ];
        for f in no {
            let filter = parse_filter(f).unwrap();
            assert!(!filter.matches(ResourceKind::User, &user()), "{f}");
        }
    }

    #[test]
    fn empty_values_are_not_present() {
        let user = json!({"userName": "x", "title": "", "emails": [], "name": {"givenName": null}});
        for f in ["title pr", "emails pr", "name pr", "name.givenName pr", "emails.value pr"] {
            assert!(!parse_filter(f).unwrap().matches(ResourceKind::User, &user), "{f}");
        }
    }

    #[test]
    fn groups_and_element_filters() {
        let group = json!({
            "displayName": "Engineering",
            "members": [{"value": "a1", "type": "User"}, {"value": "B2"}]
        });
        let f = |s: &str| parse_filter(s).unwrap().matches(ResourceKind::Group, &group);
        assert!(f(r#"displayName eq "engineering""#));
        assert!(f(r#"members[value eq "B2"]"#));
        assert!(f(r#"members.value eq "a1""#));
        // members.value is case-insensitive per RFC 7643 (caseExact false)
        assert!(f(r#"members[value eq "b2"]"#));
        assert!(!f(r#"members[value eq "c3"]"#));

        let work = parse_filter(r#"type eq "work""#).unwrap();
        let emails = schema::USER_ATTRS.iter().find(|d| d.name == "emails").unwrap();
        assert!(work.matches_element(emails, &json!({"type": "Work", "value": "x"})));
        assert!(!work.matches_element(emails, &json!({"type": "home"})));
    }

    fn invalid(filter: &str) -> String {
        let parsed = parse_filter(filter).unwrap();
        let e = validate(ResourceKind::User, &parsed).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidFilter"), "{filter}");
        e.detail
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(invalid("nope pr"), "unknown attribute 'nope'");
        assert!(invalid(r#"emails[kind eq "x"]"#).contains("inside 'emails[...]' use one of value"));
        assert!(invalid(r#"password eq "x""#).contains("cannot be used in a filter"));
        assert!(invalid("active gt true").contains("eq or ne"));
        assert!(invalid(r#"active eq "yes""#).contains("true or false"));
        assert!(invalid(r#"name eq "x""#).contains("name.familyName"));
        assert!(invalid("name gt 1").contains("complex"));
        assert!(invalid("userName eq 5").contains("string in double quotes"));
        assert!(invalid(r#"meta.created gt "yesterday""#).contains("RFC 3339"));
        assert!(invalid("userName gt null").contains("null"));
        assert!(invalid(r#"userName[value eq "x"]"#).contains("no sub-attributes"));
        assert!(invalid(r#"members pr"#).contains("unknown attribute 'members'"));
        for ok in [
            r#"meta.created co "2011""#,
            "emails pr",
            r#"emails eq "x""#,
            r#"emails[type eq "work"] and active eq true"#,
            "id pr",
        ] {
            validate(ResourceKind::User, &parse_filter(ok).unwrap()).unwrap();
        }
        let group = parse_filter(r#"displayName eq "x" and members[value eq "y"] or externalId pr"#).unwrap();
        validate(ResourceKind::Group, &group).unwrap();
    }
}
