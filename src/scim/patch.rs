//! PATCH (RFC 7644 section 3.5.2) as Okta and Microsoft Entra ID send it: `op` in any case,
//! `add`/`replace`/`remove` with and without `path`, path-less values whose keys are plain,
//! dotted or URN-qualified, booleans as "True"/"False", `manager` as a bare id, filtered paths
//! (`emails[type eq "work"].value`, creating the value when none matches), and all operations
//! of a request applied atomically. `apply` works on a resource in canonical form
//! (`schema::canonicalize`); `group_changes` turns a Group PATCH into member changes that
//! `store::scim` can run without loading every member. No storage, no HTTP.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::error::ScimError;
use super::evaluate::{is_present, validate_element};
use super::filter::{AttrPath, CompValue, Filter, PatchPath, parse_attr_path, parse_path};
use super::resource::{
    coerce, coerce_one, entries, is_primary, replace_attr, set_sub, tidy, with_array, with_container, writable,
};
use super::schema::{
    self, AttrDef, AttrType, MAX_STRING_CHARS, Mutability, Resolved, ResourceKind, URN_ENTERPRISE_USER, URN_PATCH_OP,
};

/// The most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;

/// The three PATCH operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

impl PatchOpKind {
    /// The operation name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }
}

/// One operation of a PATCH request. `value` is `Some(Value::Null)` when the client sent
/// `"value": null` (a replace that clears).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

fn at(i: usize) -> String {
    format!("Operations[{i}]")
}

/// The value of `key` in `obj`, in any key case.
fn get_any_case<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// Parses a PATCH body. Errors: 400 `invalidSyntax` when `schemas` lacks the PatchOp URN, when
/// `Operations` is missing or not an array, or an operation is not an object or has an unknown
/// `op`; 400 `invalidValue` when `Operations` is empty or longer than `MAX_OPERATIONS`, or an
/// `add`/`replace` has no `value`; 400 `noTarget` for a `remove` without `path`; 400
/// `invalidPath` for a malformed `path`. Details name the operation: `Operations[2]: ...`.
pub fn parse_patch(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax("the PATCH body must be a JSON object"));
    };
    let has_urn = get_any_case(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(URN_PATCH_OP))));
    if !has_urn {
        return Err(ScimError::invalid_syntax(format!("schemas must be an array that includes \"{URN_PATCH_OP}\"")));
    }
    let ops = match get_any_case(body, "Operations") {
        None => return Err(ScimError::invalid_syntax("Operations is missing")),
        Some(Value::Array(ops)) => ops,
        Some(_) => return Err(ScimError::invalid_syntax("Operations must be an array")),
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_value("Operations is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "Operations has {} operations; at most {MAX_OPERATIONS} are accepted in one request",
            ops.len()
        )));
    }
    ops.iter().enumerate().map(|(i, op)| parse_op(op).map_err(|e| e.prefixed(&at(i)))).collect()
}

fn parse_op(op: &Value) -> Result<PatchOp, ScimError> {
    let Value::Object(op) = op else {
        return Err(ScimError::invalid_syntax("an operation must be a JSON object"));
    };
    let kind = match get_any_case(op, "op") {
        Some(Value::String(name)) => match name.trim().to_ascii_lowercase().as_str() {
            "add" => PatchOpKind::Add,
            "remove" => PatchOpKind::Remove,
            "replace" => PatchOpKind::Replace,
            _ => {
                return Err(ScimError::invalid_syntax(format!("op \"{name}\" is not add, remove or replace")));
            }
        },
        Some(_) => return Err(ScimError::invalid_syntax("op must be a string")),
        None => return Err(ScimError::invalid_syntax("op is missing")),
    };
    let path = match get_any_case(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(parse_path(p)?),
        Some(_) => return Err(ScimError::invalid_path("path must be a string")),
    };
    let value = get_any_case(op, "value").cloned();
    match kind {
        PatchOpKind::Remove if path.is_none() => {
            return Err(ScimError::no_target("remove needs a path"));
        }
        PatchOpKind::Add | PatchOpKind::Replace => match (&value, &path) {
            (None, _) => {
                return Err(ScimError::invalid_value(format!("{} needs a value", kind.as_str())));
            }
            (Some(Value::Null), _) if kind == PatchOpKind::Add || path.is_none() => {
                return Err(ScimError::invalid_value(format!("{} needs a value other than null", kind.as_str())));
            }
            _ => {}
        },
        PatchOpKind::Remove => {}
    }
    Ok(PatchOp { op: kind, path, value })
}

/// Checks the `id` a path-less `add`/`replace` value carries (Okta and Entra send the
/// resource's own `id` along with a rename): the resource's own id is accepted and ignored,
/// another one is 400 `mutability`. `apply` does this itself with the resource's `id`; callers of
/// `group_changes` call it with the group's id.
pub fn check_id(ops: &[PatchOp], own_id: &str) -> Result<(), ScimError> {
    for (i, op) in ops.iter().enumerate() {
        let (None, Some(Value::Object(obj))) = (&op.path, &op.value) else {
            continue;
        };
        for (key, value) in obj {
            let is_id = parse_attr_path(key).is_ok_and(|p| p.name_is("id") && p.sub.is_none());
            if is_id && value.as_str() != Some(own_id) {
                return Err(ScimError::mutability(format!("id is readOnly; {value} is not this resource's id"))
                    .prefixed(&at(i)));
            }
        }
    }
    Ok(())
}

/// Applies `ops` in order to `resource` (canonical form), all or none: on an error the resource
/// is left as it was. Errors (400, the detail starting `Operations[i]: `): `invalidPath` for a
/// path outside the schema or a value filter on an attribute that has no values to filter;
/// `mutability` for a read-only target (`id`, `meta`, `groups`, `manager.displayName`) or a
/// replaced immutable one, or an `id` other than the resource's own; `invalidValue` for a value
/// of the wrong type or one that clears a required attribute; `noTarget` for a filtered add or
/// replace that matches nothing and whose filter is not a conjunction of `eq` conditions to
/// create the value from. A filtered remove that matches nothing changes nothing.
pub fn apply(kind: ResourceKind, resource: &mut Value, ops: &[PatchOp]) -> Result<(), ScimError> {
    let Value::Object(original) = resource else {
        return Err(ScimError::internal("the resource to patch is not a JSON object"));
    };
    let own_id = original.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(own_id) = &own_id {
        check_id(ops, own_id)?;
    }
    let mut work = original.clone();
    for (i, op) in ops.iter().enumerate() {
        let before = work.clone();
        apply_op(kind, &mut work, op)
            .and_then(|()| after_op(kind, &before, &mut work))
            .map_err(|e| e.prefixed(&at(i)))?;
    }
    tidy(kind, &mut work);
    *original = work;
    Ok(())
}

/// Keeps what must hold after each operation: a required attribute that was there stays, and
/// a value newly made primary makes the others non-primary (RFC 7644 section 3.5.2).
fn after_op(kind: ResourceKind, before: &Map<String, Value>, work: &mut Map<String, Value>) -> Result<(), ScimError> {
    for def in kind.core_attrs() {
        if def.required && before.contains_key(def.name) && !work.get(def.name).is_some_and(is_present) {
            return Err(ScimError::invalid_value(format!("{} is required and cannot be removed or emptied", def.name)));
        }
        if !def.multi_valued || def.sub("primary").is_none() {
            continue;
        }
        let Some(Value::Array(items)) = work.get_mut(def.name) else {
            continue;
        };
        let primaries: Vec<usize> = (0..items.len()).filter(|i| is_primary(&items[*i])).collect();
        if primaries.len() < 2 {
            continue;
        }
        let old: Vec<&Value> = match before.get(def.name) {
            Some(Value::Array(old)) => old.iter().filter(|v| is_primary(v)).collect(),
            _ => Vec::new(),
        };
        let new: Vec<usize> = primaries.iter().copied().filter(|i| !old.contains(&&items[*i])).collect();
        if new.len() > 1 {
            return Err(ScimError::invalid_value(format!("{}: primary is true on more than one value", def.name)));
        }
        for i in primaries {
            if !new.contains(&i)
                && let Some(obj) = items[i].as_object_mut()
            {
                obj.remove("primary");
            }
        }
    }
    Ok(())
}

fn unknown_attribute(path: &AttrPath) -> ScimError {
    let hint = if path.urn.is_none()
        && schema::ENTERPRISE_USER_ATTRS.iter().any(|d| d.name.eq_ignore_ascii_case(&path.name))
    {
        format!("; enterprise attributes are written '{URN_ENTERPRISE_USER}:{path}'")
    } else {
        String::new()
    };
    ScimError::invalid_path(format!("unknown attribute '{path}'{hint}"))
}

/// Where an operation with a path acts: the attribute, the sub-attribute it ends at (written
/// `a.b` or `a[...].b`) and the value filter.
struct Target<'f> {
    found: Resolved,
    filter: Option<&'f Filter>,
}

fn resolve_target<'f>(kind: ResourceKind, path: &'f PatchPath) -> Result<Target<'f>, ScimError> {
    let mut found = schema::find(kind, &path.attr).ok_or_else(|| unknown_attribute(&path.attr))?;
    if let Some(filter) = &path.filter {
        if !found.attr.multi_valued || found.attr.kind != AttrType::Complex {
            return Err(ScimError::invalid_path(format!(
                "'{}' is not multi-valued; only a multi-valued attribute takes a filter '[...]'",
                found.display()
            )));
        }
        validate_element(found.attr, filter).map_err(|e| ScimError::invalid_path(e.detail))?;
        if let Some(sub) = &path.sub {
            found.sub = Some(found.attr.sub(sub).ok_or_else(|| {
                ScimError::invalid_path(format!("unknown sub-attribute '{sub}' of '{}'", found.display()))
            })?);
        }
    }
    Ok(Target { found, filter: path.filter.as_ref() })
}

fn apply_op(kind: ResourceKind, work: &mut Map<String, Value>, op: &PatchOp) -> Result<(), ScimError> {
    let Some(path) = &op.path else {
        return match &op.value {
            Some(Value::Object(obj)) if op.op != PatchOpKind::Remove => apply_object(kind, work, op.op, obj),
            Some(other) if op.op != PatchOpKind::Remove => Err(ScimError::invalid_value(format!(
                "without a path, the value must be an object of attributes, not {other}"
            ))),
            _ => Err(ScimError::no_target(format!("{} needs a path", op.op.as_str()))),
        };
    };
    // The extension's URN as the path: its object of attributes.
    if let Some(urn) = schema::whole_schema(kind, &path.attr).filter(|_| path.filter.is_none()) {
        return match (op.op, &op.value) {
            (PatchOpKind::Remove, _) => {
                work.remove(urn);
                Ok(())
            }
            (_, Some(Value::Object(obj))) => {
                let mut wrapped = Map::new();
                wrapped.insert(urn.to_owned(), Value::Object(obj.clone()));
                apply_object(kind, work, op.op, &wrapped)
            }
            _ => Err(ScimError::invalid_value(format!("{urn} must be an object"))),
        };
    }
    let target = resolve_target(kind, path)?;
    let found = &target.found;
    if !writable(found) {
        return Err(ScimError::mutability(format!("'{}' is readOnly", found.display())));
    }
    if op.op == PatchOpKind::Replace && found.sub.is_some_and(|s| s.mutability == Mutability::Immutable) {
        return Err(ScimError::mutability(format!(
            "'{}' is immutable; remove the value and add another",
            found.display()
        )));
    }
    let label = path.to_string();
    match op.op {
        PatchOpKind::Remove => {
            remove(work, &target, op.value.as_ref(), &label);
            Ok(())
        }
        PatchOpKind::Add | PatchOpKind::Replace => {
            let value = op.value.as_ref().unwrap_or(&Value::Null);
            write(work, &target, op.op, value, &label)
        }
    }
}

/// A path-less add or replace: each key of `obj` (plain, dotted, URN-qualified, or the
/// extension's URN with an object) as if it were the path. Read-only and unknown keys are
/// ignored, as in a POST body (`id` was checked by `check_id`).
fn apply_object(
    kind: ResourceKind,
    work: &mut Map<String, Value>,
    op: PatchOpKind,
    obj: &Map<String, Value>,
) -> Result<(), ScimError> {
    for (found, value) in entries(kind, obj)? {
        if !writable(&found) {
            continue;
        }
        let target = Target { found, filter: None };
        write(work, &target, op, value, &found.display())?;
    }
    Ok(())
}

/// The value a comparison literal stands for, as JSON.
fn literal_json(literal: &CompValue) -> Value {
    match literal {
        CompValue::Str(s) => Value::from(s.as_str()),
        CompValue::Num(n) => Value::Number(n.clone()),
        CompValue::Bool(b) => Value::Bool(*b),
        CompValue::Null => Value::Null,
    }
}

/// A new value of `attr` built from the filter's `eq` conditions (`[type eq "work"]` gives
/// `{"type": "work"}`); `noTarget` when the filter is not such a conjunction.
fn element_from_filter(attr: &'static AttrDef, filter: &Filter, label: &str) -> Result<Map<String, Value>, ScimError> {
    let conditions = filter.eq_conditions().ok_or_else(|| {
        ScimError::no_target(format!(
            "no value of '{}' matches [{filter}], and only a filter of eq conditions joined by \
             'and' says what value to create",
            attr.name
        ))
    })?;
    let mut element = Map::new();
    for (path, literal) in conditions {
        let Some(sub) = attr.sub(&path.name) else {
            continue;
        };
        if let Some(v) = coerce_one(sub, &literal_json(literal), &format!("{label}: {}", sub.name))? {
            element.insert(sub.name.into(), v);
        }
    }
    Ok(element)
}

/// Whether two values of a multi-valued attribute are the same value: equal `value` (compared
/// as the schema says) and, when both have one, equal `type`; or equal as JSON when there is
/// no `value`.
fn same_value(attr: &AttrDef, a: &Value, b: &Value) -> bool {
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match (field(a, "value"), field(b, "value")) {
        (Some(x), Some(y)) => {
            let case_exact = attr.sub("value").is_some_and(|d| d.case_exact);
            let same = if case_exact { x == y } else { x.to_lowercase() == y.to_lowercase() };
            same && match (field(a, "type"), field(b, "type")) {
                (Some(x), Some(y)) => x.eq_ignore_ascii_case(&y),
                _ => true,
            }
        }
        _ => a == b,
    }
}

/// Add or replace at a target (RFC 7644 sections 3.5.2.1 and 3.5.2.3).
fn write(
    work: &mut Map<String, Value>,
    target: &Target<'_>,
    op: PatchOpKind,
    value: &Value,
    label: &str,
) -> Result<(), ScimError> {
    let found = &target.found;
    let attr = found.attr;
    let Some(filter) = target.filter else {
        if op == PatchOpKind::Add && attr.multi_valued && found.sub.is_none() {
            let Some(Value::Array(new)) = coerce(attr, value, label)? else {
                return Ok(());
            };
            with_container(work, found, |container| {
                with_array(container.entry(attr.name).or_insert(Value::Null), |items| {
                    for item in new {
                        match items.iter_mut().find(|old| same_value(attr, old, &item)) {
                            Some(Value::Object(old)) => {
                                if let Value::Object(item) = item {
                                    old.extend(item);
                                }
                            }
                            _ => items.push(item),
                        }
                    }
                })
            });
            return Ok(());
        }
        return replace_attr(work, found, value, label);
    };
    // A filtered path: the values that match, or a new one made from the filter.
    let new_sub = match found.sub {
        Some(sub) => Some((sub, coerce_one(sub, value, label)?)),
        None => None,
    };
    let new_element = match found.sub {
        Some(_) => None,
        None => match coerce_one(attr, value, label)? {
            Some(Value::Object(obj)) => Some(obj),
            _ if value.is_null() && op == PatchOpKind::Replace => None,
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "{label} needs an object with the value's sub-attributes"
                )));
            }
        },
    };
    let created = element_from_filter(attr, filter, label);
    with_container(work, found, |container| {
        with_array(container.entry(attr.name).or_insert(Value::Null), |items| {
            let mut matched = false;
            let mut kept = Vec::with_capacity(items.len());
            for mut item in items.drain(..) {
                if !filter.matches_element(attr, &item) {
                    kept.push(item);
                    continue;
                }
                matched = true;
                match (&new_sub, &new_element) {
                    (Some((sub, v)), _) => {
                        set_sub(&mut item, sub.name, v.clone());
                        kept.push(item);
                    }
                    (None, Some(obj)) if op == PatchOpKind::Add => {
                        if let Value::Object(old) = &mut item {
                            old.extend(obj.clone());
                        }
                        kept.push(item);
                    }
                    (None, Some(obj)) => kept.push(Value::Object(obj.clone())),
                    // replace with null: the matching values go
                    (None, None) => {}
                }
            }
            *items = kept;
            if matched {
                return Ok(());
            }
            let mut element = match (&new_sub, &new_element) {
                // Nothing to clear on a value that does not exist.
                (Some((_, None)), _) | (None, None) => return Ok(()),
                _ => created?,
            };
            match (&new_sub, &new_element) {
                (Some((sub, Some(v))), _) => {
                    element.insert(sub.name.into(), v.clone());
                }
                (None, Some(obj)) => element.extend(obj.clone()),
                _ => {}
            }
            items.push(Value::Object(element));
            Ok(())
        })
    })
}

/// Remove at a target (RFC 7644 section 3.5.2.2), never failing: a filter that matches nothing
/// removes nothing. A `value` array on a multi-valued attribute (Entra's
/// `{"op":"Remove","path":"members","value":[{"value":"..."}]}`) removes those values only.
fn remove(work: &mut Map<String, Value>, target: &Target<'_>, value: Option<&Value>, label: &str) {
    let found = &target.found;
    let attr = found.attr;
    let listed = match (target.filter, found.sub, value) {
        (None, None, Some(v)) if attr.multi_valued && !v.is_null() => coerce(attr, v, label).ok().flatten(),
        _ => None,
    };
    with_container(work, found, |container| {
        let Some(slot) = container.get_mut(attr.name) else {
            return;
        };
        match (target.filter, found.sub) {
            (None, None) => match (&listed, slot) {
                (Some(Value::Array(listed)), Value::Array(items)) => {
                    items.retain(|item| !listed.iter().any(|l| same_value(attr, item, l)));
                }
                _ => {
                    container.remove(attr.name);
                }
            },
            (None, Some(sub)) => match slot {
                Value::Array(items) => {
                    for item in items {
                        set_sub(item, sub.name, None);
                    }
                }
                other => set_sub(other, sub.name, None),
            },
            (Some(filter), sub) => {
                if let Value::Array(items) = slot {
                    match sub {
                        None => items.retain(|item| !filter.matches_element(attr, item)),
                        Some(sub) => {
                            for item in items.iter_mut() {
                                if filter.matches_element(attr, item) {
                                    set_sub(item, sub.name, None);
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// One change to a group, in the order the request made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Rename the group.
    DisplayName(String),
    /// Set (`Some`) or clear (`None`) the group's `externalId`.
    ExternalId(Option<String>),
    /// Add these member ids (already members are left as they are).
    AddMembers(Vec<String>),
    /// Remove these member ids (ids that are not members are ignored).
    RemoveMembers(Vec<String>),
    /// Remove every member.
    RemoveAllMembers,
    /// Make exactly these ids the members.
    ReplaceMembers(Vec<String>),
}

/// Translates a Group PATCH into `GroupChange`s in request order, without the member list:
/// path-less `add`/`replace` with `{"displayName", "externalId", "members"}` (an `id` is
/// ignored here: call `check_id`), `add`/`replace`/`remove` with path `members` (a `remove`
/// with a value array removes those, without one every member), `remove` with
/// `members[value eq "..."]` (several joined by `or` too), and `displayName`/`externalId` by
/// path. Member ids are returned trimmed and de-duplicated; the caller checks
/// they exist. Errors: 400 `invalidPath` for a path outside the Group schema or a member path
/// this translation does not support (filters on other sub-attributes, `members.display`), 400
/// `mutability` for read-only targets or removing `displayName`, 400 `invalidValue` for values
/// of the wrong type.
pub fn group_changes(ops: &[PatchOp]) -> Result<Vec<GroupChange>, ScimError> {
    let mut changes = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        group_op(op, &mut changes).map_err(|e| e.prefixed(&at(i)))?;
    }
    Ok(changes)
}

fn group_op(op: &PatchOp, changes: &mut Vec<GroupChange>) -> Result<(), ScimError> {
    let kind = ResourceKind::Group;
    let Some(path) = &op.path else {
        let obj = match &op.value {
            Some(Value::Object(obj)) if op.op != PatchOpKind::Remove => obj,
            Some(other) if op.op != PatchOpKind::Remove => {
                return Err(ScimError::invalid_value(format!(
                    "without a path, the value must be an object of attributes, not {other}"
                )));
            }
            _ => return Err(ScimError::no_target(format!("{} needs a path", op.op.as_str()))),
        };
        for (found, value) in entries(kind, obj)? {
            if writable(&found) {
                group_attr(op.op, &found, Some(value), changes)?;
            }
        }
        return Ok(());
    };
    let target = resolve_target(kind, path)?;
    let found = &target.found;
    if !writable(found) {
        return Err(ScimError::mutability(format!("'{}' is readOnly", found.display())));
    }
    match target.filter {
        None => group_attr(op.op, found, op.value.as_ref(), changes),
        Some(filter) if op.op == PatchOpKind::Remove && found.sub.is_none() => {
            let ids = member_ids_of_filter(filter).ok_or_else(|| {
                ScimError::invalid_path(format!(
                    "members can be removed by 'members[value eq \"<id>\"]' (joined by 'or'), \
                     not by [{filter}]"
                ))
            })?;
            changes.push(GroupChange::RemoveMembers(ids));
            Ok(())
        }
        Some(_) => Err(ScimError::invalid_path(format!(
            "'{path}' is not supported for groups; add members with path 'members' and remove \
             them with 'members[value eq \"<id>\"]'"
        ))),
    }
}

fn member_ids_of_filter(filter: &Filter) -> Option<Vec<String>> {
    match filter {
        Filter::Compare(path, super::filter::CompareOp::Eq, CompValue::Str(id))
            if path.name_is("value") && path.urn.is_none() && path.sub.is_none() =>
        {
            Some(vec![id.clone()])
        }
        Filter::Or(a, b) => {
            let mut ids = member_ids_of_filter(a)?;
            for id in member_ids_of_filter(b)? {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
        _ => None,
    }
}

fn group_attr(
    op: PatchOpKind,
    found: &Resolved,
    value: Option<&Value>,
    changes: &mut Vec<GroupChange>,
) -> Result<(), ScimError> {
    let label = found.display();
    let value = value.unwrap_or(&Value::Null);
    let text = |v: &Value| -> Result<Option<String>, ScimError> {
        Ok(coerce_one(found.target(), v, &label)?.and_then(|v| v.as_str().map(str::to_owned)))
    };
    match (found.attr.name, found.sub) {
        ("displayName", None) => match (op, text(value)?) {
            (PatchOpKind::Remove, _) | (_, None) => {
                return Err(ScimError::invalid_value("displayName is required and cannot be removed or emptied"));
            }
            (_, Some(name)) => changes.push(GroupChange::DisplayName(name)),
        },
        ("externalId", None) => match op {
            PatchOpKind::Remove => changes.push(GroupChange::ExternalId(None)),
            _ => changes.push(GroupChange::ExternalId(text(value)?)),
        },
        ("members", None) => {
            let ids = member_ids(value, &label)?;
            changes.push(match (op, value.is_null()) {
                (PatchOpKind::Add, _) => GroupChange::AddMembers(ids),
                (PatchOpKind::Replace, _) => GroupChange::ReplaceMembers(ids),
                (PatchOpKind::Remove, true) => GroupChange::RemoveAllMembers,
                (PatchOpKind::Remove, false) => GroupChange::RemoveMembers(ids),
            });
        }
        _ => {
            return Err(ScimError::invalid_path(format!(
                "'{label}' is not supported for groups; members are added and removed whole"
            )));
        }
    }
    Ok(())
}

/// The ids in a `members` value: `[{"value": id}, ...]`, a single object, or bare ids.
fn member_ids(value: &Value, label: &str) -> Result<Vec<String>, ScimError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    };
    let mut seen = HashSet::with_capacity(items.len());
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = match item {
            Value::Object(obj) => get_any_case(obj, "value"),
            bare => Some(bare),
        };
        let id = match id.and_then(Value::as_str).map(str::trim) {
            Some(id) if !id.is_empty() && id.chars().count() <= MAX_STRING_CHARS => id,
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "{label}[{i}] must have a value, the member's id, as a string of 1 to \
                     {MAX_STRING_CHARS} characters"
                )));
            }
        };
        if seen.insert(id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::{URN_GROUP, URN_USER};

    const ENT: &str = URN_ENTERPRISE_USER;

    fn body(ops: Value) -> Value {
        json!({"schemas": [URN_PATCH_OP], "Operations": ops})
    }

    fn user() -> Value {
        json!({
            "schemas": [URN_USER, ENT],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "userName": "bjensen@example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "groups": [{"value": "g1", "display": "Tour Guides"}],
            "meta": {"resourceType": "User", "version": "W/\"1\""},
            ENT: {"department": "Tours", "manager": {"value": "boss", "displayName": "Boss"}}
        })
    }

    /// Parses `ops` as a PATCH body and applies it to `resource`.
    fn patch(kind: ResourceKind, resource: &Value, ops: Value) -> Result<Value, ScimError> {
        let ops = parse_patch(&body(ops))?;
        let mut out = resource.clone();
        let result = apply(kind, &mut out, &ops);
        if result.is_err() {
            assert_eq!(&out, resource, "a failed PATCH must leave the resource unchanged");
        }
        result.map(|()| out)
    }

    fn patch_user(ops: Value) -> Value {
        patch(ResourceKind::User, &user(), ops).unwrap()
    }

    fn patch_user_err(ops: Value) -> ScimError {
        patch(ResourceKind::User, &user(), ops).unwrap_err()
    }

    #[test]
    fn okta_deactivation() {
        let out = patch_user(json!([{"op": "replace", "value": {"active": false}}]));
        assert_eq!(out["active"], false);
        let mut expected = user();
        expected["active"] = json!(false);
        assert_eq!(out, expected);
    }

    #[test]
    fn entra_deactivation_before_and_after_aad_opt_scim_062020() {
        let before = patch_user(json!([{"op": "Replace", "path": "active", "value": "False"}]));
        assert_eq!(before["active"], false);
        let after = patch_user(json!([{"op": "replace", "path": "active", "value": false}]));
        assert_eq!(before, after);
        let on =
            patch(ResourceKind::User, &after, json!([{"op": "Replace", "path": "active", "value": "True"}])).unwrap();
        assert_eq!(on["active"], true);
    }

    #[test]
    fn entra_add_work_email_value() {
        // creates the work email when there is none
        let no_email = json!({"schemas": [URN_USER], "id": "1", "userName": "u"});
        let out = patch(
            ResourceKind::User,
            &no_email,
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@b.c"}]),
        )
        .unwrap();
        assert_eq!(out["emails"], json!([{"type": "work", "value": "a@b.c"}]));
        // sets it on the existing one
        let out = patch_user(json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@b.c"}]));
        assert_eq!(
            out["emails"],
            json!([
                {"value": "a@b.c", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ])
        );
        // replace on a user without one works too (Entra expects it)
        let out = patch(
            ResourceKind::User,
            &no_email,
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "x@y.z"},
                   {"op": "Replace", "path": "emails[type eq \"work\"].primary", "value": "True"}]),
        )
        .unwrap();
        assert_eq!(out["emails"], json!([{"type": "work", "value": "x@y.z", "primary": true}]));
    }

    #[test]
    fn entra_manager_as_bare_id_and_its_removal() {
        let path = format!("{ENT}:manager");
        let out = patch_user(json!([{"op": "Replace", "path": path, "value": "26118915-6090-4610-87e4-49d8ca9f808d"}]));
        assert_eq!(
            out[ENT]["manager"],
            json!({"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "Boss"})
        );
        let out = patch_user(json!([{"op": "Add", "path": path, "value": {"value": "x"}}]));
        assert_eq!(out[ENT]["manager"]["value"], "x");
        let out = patch_user(json!([{"op": "Remove", "path": path}]));
        assert_eq!(out[ENT], json!({"department": "Tours"}));
        // removing the last enterprise attribute removes the extension and its schema URN
        let out =
            patch_user(json!([{"op": "Remove", "path": path}, {"op": "remove", "path": format!("{ENT}:department")}]));
        assert!(out.get(ENT).is_none());
        assert_eq!(out["schemas"], json!([URN_USER]));
        let e = patch_user_err(json!([{"op": "replace", "path": format!("{ENT}:manager.displayName"), "value": "X"}]));
        assert_eq!(e.scim_type, Some("mutability"));
        assert_eq!(e.detail, format!("Operations[0]: '{ENT}:manager.displayName' is readOnly"));
    }

    #[test]
    fn path_less_replace_with_plain_dotted_and_urn_keys() {
        let out = patch_user(json!([{"op": "replace", "value": {
            "NAME.givenName": "Babs",
            "displayName": "Babs Jensen",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales",
            ENT: {"employeeNumber": "42", "manager": "m2"},
            "urn:ietf:params:scim:schemas:core:2.0:User:title": "Guide",
            "id": "2819c223-7f76-453a-919d-413861904646",
            "meta": {"version": "x"},
            "unknownThing": 1
        }}]));
        assert_eq!(out["name"], json!({"givenName": "Babs", "familyName": "Jensen"}));
        assert_eq!(out["displayName"], "Babs Jensen");
        assert_eq!(out["title"], "Guide");
        assert_eq!(
            out[ENT],
            json!({"department": "Sales", "employeeNumber": "42", "manager": {"value": "m2", "displayName": "Boss"}})
        );
        assert_eq!(out["meta"], user()["meta"]);
        assert!(out.get("unknownThing").is_none());
        // a complex replace keeps the sub-attributes it does not name
        let out = patch_user(json!([{"op": "replace", "path": "name", "value": {"familyName": "J"}}]));
        assert_eq!(out["name"], json!({"givenName": "Barbara", "familyName": "J"}));
        // a multi-valued replace replaces all values
        let out = patch_user(json!([{"op": "replace", "path": "emails", "value": [{"value": "n@x.y"}]}]));
        assert_eq!(out["emails"], json!([{"value": "n@x.y"}]));
        // the extension's URN as the path
        let out = patch_user(json!([{"op": "replace", "path": ENT, "value": {"division": "D"}}]));
        assert_eq!(out[ENT]["division"], "D");
        assert_eq!(out[ENT]["department"], "Tours");
    }

    #[test]
    fn a_foreign_id_is_refused() {
        let e = patch_user_err(json!([{"op": "replace", "value": {"id": "other", "active": false}}]));
        assert_eq!((e.status, e.scim_type), (400, Some("mutability")));
        assert!(e.detail.starts_with("Operations[0]: id is readOnly"));
        let ops = parse_patch(&body(json!([{"op": "replace", "value": {"id": "g1", "displayName": "N"}}]))).unwrap();
        assert!(check_id(&ops, "g1").is_ok());
        assert!(check_id(&ops, "g2").is_err());
    }

    #[test]
    fn rfc_7644_add_examples() {
        // 3.5.2.1: add members, path-less add of emails and nickname
        let group = json!({"schemas": [URN_GROUP], "id": "g", "displayName": "Tour Guides",
                           "members": [{"value": "2819c223", "display": "Babs"}]});
        let out = patch(ResourceKind::Group, &group, json!([{
            "op": "add", "path": "members",
            "value": [{"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223", "value": "2819c223"},
                      {"value": "902c246b"}]
        }])).unwrap();
        assert_eq!(
            out["members"],
            json!([
                {"value": "2819c223", "display": "Babs", "$ref": "https://example.com/v2/Users/2819c223"},
                {"value": "902c246b"}
            ])
        );
        let out = patch_user(json!([{"op": "add", "value": {
            "emails": [{"value": "babs@jensen.org", "type": "home"}, {"value": "new@jensen.org", "type": "other"}],
            "nickname": "Babs"
        }}]));
        assert_eq!(out["nickName"], "Babs");
        assert_eq!(out["emails"].as_array().unwrap().len(), 3);
        // a new primary value makes the old one non-primary
        let out = patch_user(
            json!([{"op": "add", "path": "emails", "value": [{"value": "p@x.y", "type": "other", "primary": true}]}]),
        );
        assert_eq!(
            out["emails"],
            json!([
                {"value": "bjensen@example.com", "type": "work"},
                {"value": "babs@jensen.org", "type": "home"},
                {"value": "p@x.y", "type": "other", "primary": true}
            ])
        );
    }

    #[test]
    fn rfc_7644_remove_and_replace_examples() {
        // 3.5.2.2
        let out =
            patch_user(json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]));
        assert_eq!(out["emails"], json!([{"value": "babs@jensen.org", "type": "home"}]));
        let out = patch_user(json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]));
        assert_eq!(out, user(), "a filter that matches nothing removes nothing");
        // `emails` is required here (Roster needs an address): removing it is refused.
        let e = patch_user_err(json!([{"op": "remove", "path": "emails"}]));
        assert_eq!(e.scim_type, Some("invalidValue"));
        let out = patch_user(json!([{"op": "remove", "path": "title"}, {"op": "remove", "path": "name.givenName"}]));
        assert!(out.get("title").is_none());
        assert_eq!(out["name"], json!({"familyName": "Jensen"}));
        let out = patch_user(json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]));
        assert_eq!(out["emails"][0], json!({"value": "bjensen@example.com", "type": "work"}));
        // 3.5.2.3
        let out = patch_user(json!([{"op": "replace", "path": "emails[type eq \"work\"]",
                                     "value": {"type": "work", "value": "bjensen@example.org"}}]));
        assert_eq!(out["emails"][0], json!({"type": "work", "value": "bjensen@example.org"}));
        let out = patch_user(json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h@x.y"}]));
        assert_eq!(out["emails"][1], json!({"value": "h@x.y", "type": "home"}));
        let out = patch_user(json!([{"op": "replace", "path": "displayName", "value": "B"},
                                    {"op": "replace", "path": "displayName", "value": null}]));
        assert!(out.get("displayName").is_none());
    }

    #[test]
    fn errors_name_the_operation_and_change_nothing() {
        let ok = json!({"op": "replace", "path": "title", "value": "x"});
        let cases = [
            (
                json!({"op": "replace", "path": "nope", "value": 1}),
                "invalidPath",
                "Operations[1]: unknown attribute 'nope'",
            ),
            (json!({"op": "replace", "path": "id", "value": "x"}), "mutability", "Operations[1]: 'id' is readOnly"),
            (
                json!({"op": "add", "path": "groups", "value": [{"value": "g"}]}),
                "mutability",
                "Operations[1]: 'groups' is readOnly",
            ),
            (
                json!({"op": "remove", "path": "meta.version"}),
                "mutability",
                "Operations[1]: 'meta.version' is readOnly",
            ),
            (
                json!({"op": "replace", "path": "active", "value": {"a": 1}}),
                "invalidValue",
                "Operations[1]: active must be a boolean (true or false), not an object",
            ),
            (
                json!({"op": "remove", "path": "userName"}),
                "invalidValue",
                "Operations[1]: userName is required and cannot be removed or emptied",
            ),
            (
                json!({"op": "replace", "path": "userName", "value": ""}),
                "invalidValue",
                "Operations[1]: userName is required and cannot be removed or emptied",
            ),
            (
                json!({"op": "add", "path": "emails[value co \"zzz\"].type", "value": "work"}),
                "noTarget",
                "Operations[1]: no value of 'emails' matches [value co \"zzz\"], and only a filter of eq conditions joined by 'and' says what value to create",
            ),
            (
                json!({"op": "replace", "path": "name[givenName eq \"x\"]", "value": {}}),
                "invalidPath",
                "Operations[1]: 'name' is not multi-valued; only a multi-valued attribute takes a filter '[...]'",
            ),
            (
                json!({"op": "replace", "path": "emails[kind eq \"x\"].value", "value": "v"}),
                "invalidPath",
                "Operations[1]: unknown attribute 'kind'; inside 'emails[...]' use one of value, display, type, primary",
            ),
            (
                json!({"op": "replace", "path": "emails[type eq \"work\"].nope", "value": "v"}),
                "invalidPath",
                "Operations[1]: unknown sub-attribute 'nope' of 'emails'",
            ),
            (
                json!({"op": "add", "path": "emails", "value": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
                "invalidValue",
                "Operations[1]: emails: primary is true on more than one value",
            ),
            (
                json!({"op": "replace", "value": "x"}),
                "invalidValue",
                "Operations[1]: without a path, the value must be an object of attributes, not \"x\"",
            ),
        ];
        for (op, scim_type, detail) in cases {
            let e = patch(ResourceKind::User, &user(), json!([ok.clone(), op.clone()])).expect_err(&op.to_string());
            assert_eq!((e.status, e.scim_type, e.detail.as_str()), (400, Some(scim_type), detail), "{op}");
        }
    }

    #[test]
    fn parse_errors() {
        let e = parse_patch(&json!({"Operations": [{"op": "add", "value": {}}]})).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidSyntax"));
        assert!(e.detail.contains(URN_PATCH_OP));
        let parse_err = |ops: Value| parse_patch(&body(ops)).unwrap_err();
        let e = parse_err(json!([]));
        assert_eq!((e.scim_type, e.detail.as_str()), (Some("invalidValue"), "Operations is empty"));
        let e = parse_err(json!({"op": "add"}));
        assert_eq!(e.scim_type, Some("invalidSyntax"));
        let e = parse_err(json!([{"op": "add", "value": {}}, {"op": "move", "path": "a"}]));
        assert_eq!(
            (e.scim_type, e.detail.as_str()),
            (Some("invalidSyntax"), "Operations[1]: op \"move\" is not add, remove or replace")
        );
        let e = parse_err(json!([{"op": "Remove"}]));
        assert_eq!((e.scim_type, e.detail.as_str()), (Some("noTarget"), "Operations[0]: remove needs a path"));
        let e = parse_err(json!([{"op": "add", "path": "title"}]));
        assert_eq!((e.scim_type, e.detail.as_str()), (Some("invalidValue"), "Operations[0]: add needs a value"));
        let e = parse_err(json!([{"op": "add", "path": "title", "value": null}]));
        assert_eq!(e.scim_type, Some("invalidValue"));
        let e = parse_err(json!([{"op": "replace", "path": "emails[type eq", "value": 1}]));
        assert_eq!(e.scim_type, Some("invalidPath"));
        assert!(e.detail.starts_with("Operations[0]: invalid path at character 15"), "{}", e.detail);
        let many: Vec<Value> = (0..=MAX_OPERATIONS).map(|_| json!({"op": "remove", "path": "title"})).collect();
        let e = parse_err(Value::Array(many));
        assert_eq!(
            (e.scim_type, e.detail.as_str()),
            (Some("invalidValue"), "Operations has 1001 operations; at most 1000 are accepted in one request")
        );
        // any case of keys and op; "value": null for a replace with a path is kept (clears)
        let ops = parse_patch(&json!({"SCHEMAS": [URN_PATCH_OP.to_uppercase()], "operations": [
            {"OP": "REPLACE", "Path": "title", "Value": null}, {"op": "Add", "value": {"title": "x"}}
        ]}))
        .unwrap();
        assert_eq!(
            ops[0],
            PatchOp { op: PatchOpKind::Replace, path: Some(parse_path("title").unwrap()), value: Some(Value::Null) }
        );
        assert_eq!((ops[1].op, ops[1].path.is_none()), (PatchOpKind::Add, true));
    }

    fn group_ops(ops: Value) -> Result<Vec<GroupChange>, ScimError> {
        group_changes(&parse_patch(&body(ops))?)
    }

    #[test]
    fn okta_group_patches() {
        assert_eq!(
            group_ops(json!([{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Group Name"}}])).unwrap(),
            vec![GroupChange::DisplayName("Group Name".into())]
        );
        assert_eq!(
            group_ops(json!([{"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"}]))
                .unwrap(),
            vec![GroupChange::RemoveMembers(vec!["89bb1940-b905-4575-9e7f-6f887cfb368e".into()])]
        );
        assert_eq!(
            group_ops(json!([{"op": "add", "path": "members", "value": [
                {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}
            ]}]))
            .unwrap(),
            vec![GroupChange::AddMembers(vec!["23a35c27-23d3-4c03-b4c5-6443c09e7173".into()])]
        );
    }

    #[test]
    fn entra_group_patches() {
        assert_eq!(
            group_ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "f648f8d5-ea3d-4ad7-83e3-1de59437ab1a"}]}])).unwrap(),
            vec![GroupChange::RemoveMembers(vec!["f648f8d5-ea3d-4ad7-83e3-1de59437ab1a".into()])]
        );
        assert_eq!(
            group_ops(json!([
                {"op": "Add", "path": "members", "value": [{"value": "a"}, {"value": "b"}, {"value": "a"}]},
                {"op": "Replace", "path": "displayName", "value": "Renamed"},
                {"op": "Replace", "path": "externalId", "value": "ext-1"},
                {"op": "Remove", "path": "externalId"},
                {"op": "Add", "value": {"members": [{"value": "c"}], "externalId": ""}},
                {"op": "Replace", "path": "members", "value": [{"value": "d"}]},
                {"op": "Remove", "path": "members"},
                {"op": "remove", "path": "members[value eq \"x\" or value eq \"y\"]"}
            ]))
            .unwrap(),
            vec![
                GroupChange::AddMembers(vec!["a".into(), "b".into()]),
                GroupChange::DisplayName("Renamed".into()),
                GroupChange::ExternalId(Some("ext-1".into())),
                GroupChange::ExternalId(None),
                GroupChange::ExternalId(None),
                GroupChange::AddMembers(vec!["c".into()]),
                GroupChange::ReplaceMembers(vec!["d".into()]),
                GroupChange::RemoveAllMembers,
                GroupChange::RemoveMembers(vec!["x".into(), "y".into()]),
            ]
        );
        // the same operations through apply on a group document
        let group = json!({"schemas": [URN_GROUP], "id": "g", "displayName": "G",
                           "members": [{"value": "f648f8d5-ea3d-4ad7-83e3-1de59437ab1a"}, {"value": "k"}]});
        let out = patch(
            ResourceKind::Group,
            &group,
            json!([
                {"op": "Remove", "path": "members", "value": [{"value": "F648F8D5-EA3D-4AD7-83E3-1DE59437AB1A"}]},
                {"op": "replace", "value": {"id": "g", "displayName": "Group Name"}}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"schemas": [URN_GROUP], "id": "g", "displayName": "Group Name", "members": [{"value": "k"}]})
        );
    }

    #[test]
    fn group_patch_errors() {
        let err = |ops: Value| group_ops(ops).unwrap_err();
        let e = err(json!([{"op": "remove", "path": "members[display eq \"Bob\"]"}]));
        assert_eq!(e.scim_type, Some("invalidPath"));
        assert!(e.detail.starts_with("Operations[0]: members can be removed by"));
        let e = err(json!([{"op": "add", "path": "members", "value": [{"display": "no id"}]}]));
        assert_eq!(
            (e.scim_type, e.detail.as_str()),
            (
                Some("invalidValue"),
                "Operations[0]: members[0] must have a value, the member's id, as a string of 1 to 1024 characters"
            )
        );
        let e = err(json!([{"op": "remove", "path": "displayName"}]));
        assert_eq!(e.scim_type, Some("invalidValue"));
        let e = err(json!([{"op": "replace", "path": "meta.version", "value": "x"}]));
        assert_eq!(e.scim_type, Some("mutability"));
        let e = err(json!([{"op": "replace", "path": "userName", "value": "x"}]));
        assert_eq!(
            (e.scim_type, e.detail.as_str()),
            (Some("invalidPath"), "Operations[0]: unknown attribute 'userName'")
        );
        let e = err(json!([{"op": "replace", "path": "members[value eq \"a\"].value", "value": "b"}]));
        assert_eq!(e.scim_type, Some("invalidPath"));
        let e = err(json!([{"op": "replace", "path": "displayName", "value": 5}]));
        assert_eq!(e.detail, "Operations[0]: displayName must be a string, not a number");
    }

    #[test]
    fn ten_thousand_members_in_one_change() {
        let members: Vec<Value> = (0..10_000).map(|i| json!({"value": format!("m{i}")})).collect();
        let changes = group_ops(json!([{"op": "add", "path": "members", "value": members}])).unwrap();
        let [GroupChange::AddMembers(ids)] = changes.as_slice() else { panic!("{changes:?}") };
        assert_eq!(ids.len(), 10_000);
    }
}
