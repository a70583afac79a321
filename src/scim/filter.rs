//! The filter and attribute-path grammar of RFC 7644: `filter=` expressions (section 3.4.2.2,
//! Figure 1), PATCH paths (section 3.5.2, `PATH = attrPath / valuePath [subAttr]`) and single
//! attribute paths (for `attributes=`, `sortBy=`). Parsing is bounded (length and nesting depth)
//! and never panics; errors name the character position and what was expected. Evaluation
//! against a canonical resource (`Filter::matches`) and the schema check (`validate`) are in
//! `evaluate` and re-exported here. Nothing here knows about storage: the SQL translation of a
//! `Filter` belongs to `store::scim`.

use std::fmt;

use serde_json::{Number, Value};

use super::error::ScimError;

pub use super::evaluate::{validate, validate_element};

/// The longest filter or path accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 8 * 1024;
/// The deepest nesting of parentheses, `not (...)` and value filters accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

/// An attribute path as written: `userName`, `name.familyName`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`. Names keep the
/// case the client used; compare them with the `*_is`/`eq_ignore_case` helpers or resolve them
/// with `schema::find`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN before the attribute name, without the final `:`.
    pub urn: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute after the `.`.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute without a URN.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath { urn: None, name: name.into(), sub: None }
    }

    /// The same path with a sub-attribute.
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// The same path with a schema URN.
    pub fn with_urn(mut self, urn: impl Into<String>) -> Self {
        self.urn = Some(urn.into());
        self
    }

    /// Whether the attribute name is `name`, ignoring case (URN and sub-attribute not compared).
    pub fn name_is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Whether the sub-attribute is `sub`, ignoring case.
    pub fn sub_is(&self, sub: &str) -> bool {
        self.sub.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(sub))
    }

    /// Whether both paths name the same thing, ignoring case in every part.
    pub fn eq_ignore_case(&self, other: &AttrPath) -> bool {
        fn same(a: Option<&str>, b: Option<&str>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
        }
        self.name.eq_ignore_ascii_case(&other.name)
            && same(self.urn.as_deref(), other.urn.as_deref())
            && same(self.sub.as_deref(), other.sub.as_deref())
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator (RFC 7644 table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// The operator as written in a filter, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn parse(word: &str) -> Option<CompareOp> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter().find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// Whether this is one of `gt`, `ge`, `lt`, `le`.
    pub fn is_ordering(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
    }

    /// Whether this is one of `co`, `sw`, `ew`.
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// The literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CompValue {
    Str(String),
    Num(Number),
    Bool(bool),
    Null,
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Str(s) => write!(f, "{}", Value::from(s.as_str())),
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

/// A parsed filter (RFC 7644 section 3.4.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr pr`
    Present(AttrPath),
    /// `attr op value`
    Compare(AttrPath, CompareOp, CompValue),
    /// `emails[type eq "work"]`: the inner filter's paths are sub-attributes of the outer one.
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    /// The comparisons `attr eq value` that must all hold for this filter to hold, when it is a
    /// plain conjunction of them (`type eq "work" and primary eq true`); `None` otherwise. PATCH
    /// uses it to create the element a filtered path names when none exists yet.
    pub fn eq_conditions(&self) -> Option<Vec<(&AttrPath, &CompValue)>> {
        match self {
            Filter::Compare(path, CompareOp::Eq, value) => Some(vec![(path, value)]),
            Filter::And(a, b) => {
                let mut all = a.eq_conditions()?;
                all.extend(b.eq_conditions()?);
                Some(all)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parentheses where the default precedence (and over or, both left-associative) would
        // build another tree.
        let side = |f: &mut fmt::Formatter<'_>, inner: &Filter, group: bool| {
            if group { write!(f, "({inner})") } else { write!(f, "{inner}") }
        };
        match self {
            Filter::And(a, b) => {
                side(f, a, matches!(**a, Filter::Or(..)))?;
                f.write_str(" and ")?;
                side(f, b, matches!(**b, Filter::Or(..) | Filter::And(..)))
            }
            Filter::Or(a, b) => {
                side(f, a, false)?;
                f.write_str(" or ")?;
                side(f, b, matches!(**b, Filter::Or(..)))
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Compare(path, op, value) => write!(f, "{path} {} {value}", op.as_str()),
            Filter::ValuePath(path, inner) => write!(f, "{path}[{inner}]"),
        }
    }
}

/// A PATCH path: `attrPath`, or `valuePath [subAttr]`. `name.givenName` keeps its sub-attribute
/// in `attr.sub`; `emails[type eq "work"].value` has `attr` = `emails`, the filter and
/// `sub` = `value`. Use `sub_attr` for either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

impl PatchPath {
    /// The sub-attribute the path ends at, whether written `a.b` or `a[...].b`.
    pub fn sub_attr(&self) -> Option<&str> {
        self.sub.as_deref().or(self.attr.sub.as_deref())
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Parses a `filter` query parameter. Errors are 400 `invalidFilter` naming the position.
pub fn parse_filter(s: &str) -> Result<Filter, ScimError> {
    let mut p = Parser::new(s, "filter", ScimError::invalid_filter)?;
    p.skip_ws();
    if p.at_end() {
        return Err(p.error("the filter is empty"));
    }
    let filter = p.parse_or(0, false)?;
    p.skip_ws();
    p.expect_end("'and', 'or' or the end of the filter")?;
    Ok(filter)
}

/// Parses a PATCH `path`. Errors are 400 `invalidPath` naming the position.
pub fn parse_path(s: &str) -> Result<PatchPath, ScimError> {
    let mut p = Parser::new(s, "path", ScimError::invalid_path)?;
    p.skip_ws();
    let start = p.pos;
    let attr = p.attr_path()?;
    let mut path = PatchPath { attr, filter: None, sub: None };
    if p.peek() == Some(b'[') {
        if path.attr.sub.is_some() {
            return Err(p.error_at(start, "a value filter must follow the attribute, not a sub-attribute"));
        }
        path.filter = Some(p.value_filter(0)?);
        if p.peek() == Some(b'.') {
            p.pos += 1;
            let at = p.pos;
            let name = p.take_while(is_name_byte);
            if !valid_name(name) {
                return Err(p.error_at(at, "expected a sub-attribute name after '.'"));
            }
            path.sub = Some(name.to_owned());
        }
    }
    p.skip_ws();
    p.expect_end("the end of the path")?;
    Ok(path)
}

/// Parses one attribute path without a filter (`emails.value`, a URN-qualified name). Errors are
/// 400 `invalidPath`.
pub fn parse_attr_path(s: &str) -> Result<AttrPath, ScimError> {
    let mut p = Parser::new(s, "attribute", ScimError::invalid_path)?;
    p.skip_ws();
    let path = p.attr_path()?;
    p.skip_ws();
    p.expect_end("the end of the attribute path")?;
    Ok(path)
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
    make_error: fn(String) -> ScimError,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$'
}

fn is_path_byte(b: u8) -> bool {
    is_name_byte(b) || b == b':' || b == b'.'
}

/// `ATTRNAME = ALPHA *(nameChar)`, and `$ref`, which the schemas use.
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() => {}
        Some(b'$') if name.len() > 1 => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, what: &'static str, make_error: fn(String) -> ScimError) -> Result<Self, ScimError> {
        if src.len() > MAX_FILTER_BYTES {
            return Err(make_error(format!(
                "the {what} is {} bytes long; at most {MAX_FILTER_BYTES} are accepted",
                src.len()
            )));
        }
        Ok(Parser { src, bytes: src.as_bytes(), pos: 0, what, make_error })
    }

    fn error(&self, msg: &str) -> ScimError {
        self.error_at(self.pos, msg)
    }

    /// An error at a byte offset, reported as a 1-based character position.
    fn error_at(&self, at: usize, msg: &str) -> ScimError {
        let at = at.min(self.src.len());
        let character = self.src.get(..at).map_or(at, |s| s.chars().count()) + 1;
        let found = match self.src.get(at..).and_then(|rest| rest.chars().next()) {
            None => "the end".to_owned(),
            Some(c) => format!("'{c}'"),
        };
        (self.make_error)(format!("invalid {} at character {character} (found {found}): {msg}", self.what))
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn expect_end(&self, expected: &str) -> Result<(), ScimError> {
        if self.at_end() { Ok(()) } else { Err(self.error(&format!("expected {expected}"))) }
    }

    fn take_while(&mut self, pred: fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(pred) {
            self.pos += 1;
        }
        // The predicates accept ASCII only, so both ends are character boundaries.
        self.src.get(start..self.pos).unwrap_or_default()
    }

    /// Consumes the word `kw` (any case) if it comes next as a whole word.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let end = self.pos + kw.len();
        let matches = self.src.get(self.pos..end).is_some_and(|w| w.eq_ignore_ascii_case(kw))
            && !self.bytes.get(end).copied().is_some_and(is_path_byte);
        if matches {
            self.pos = end;
        }
        matches
    }

    fn deeper(&self, depth: usize) -> Result<usize, ScimError> {
        if depth >= MAX_FILTER_DEPTH {
            Err(self.error(&format!("the {} is nested more than {MAX_FILTER_DEPTH} levels deep", self.what)))
        } else {
            Ok(depth + 1)
        }
    }

    fn parse_or(&mut self, depth: usize, in_value: bool) -> Result<Filter, ScimError> {
        self.chain(depth, in_value, "or", Self::parse_and, Filter::Or)
    }

    fn parse_and(&mut self, depth: usize, in_value: bool) -> Result<Filter, ScimError> {
        self.chain(depth, in_value, "and", Self::parse_unary, Filter::And)
    }

    /// `operand *(SP keyword SP operand)`, left-associative, in a loop rather than recursion.
    fn chain(
        &mut self,
        depth: usize,
        in_value: bool,
        keyword: &str,
        operand: fn(&mut Self, usize, bool) -> Result<Filter, ScimError>,
        join: fn(Box<Filter>, Box<Filter>) -> Filter,
    ) -> Result<Filter, ScimError> {
        let mut left = operand(self, depth, in_value)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.pos > save && self.eat_keyword(keyword) {
                let right = operand(self, depth, in_value)?;
                left = join(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    fn parse_unary(&mut self, depth: usize, in_value: bool) -> Result<Filter, ScimError> {
        self.skip_ws();
        if self.peek() == Some(b'(') {
            return self.group(depth, in_value);
        }
        let save = self.pos;
        if self.eat_keyword("not") {
            self.skip_ws();
            if self.peek() == Some(b'(') {
                return Ok(Filter::Not(Box::new(self.group(depth, in_value)?)));
            }
            self.pos = save;
        }
        self.attr_expression(depth, in_value)
    }

    fn group(&mut self, depth: usize, in_value: bool) -> Result<Filter, ScimError> {
        let depth = self.deeper(depth)?;
        self.pos += 1;
        let inner = self.parse_or(depth, in_value)?;
        self.skip_ws();
        if self.peek() != Some(b')') {
            return Err(self.error("expected ')', 'and' or 'or'"));
        }
        self.pos += 1;
        Ok(inner)
    }

    fn value_filter(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let depth = self.deeper(depth)?;
        self.pos += 1;
        let inner = self.parse_or(depth, true)?;
        self.skip_ws();
        if self.peek() != Some(b']') {
            return Err(self.error("expected ']', 'and' or 'or'"));
        }
        self.pos += 1;
        Ok(inner)
    }

    fn attr_path(&mut self) -> Result<AttrPath, ScimError> {
        let start = self.pos;
        let token = self.take_while(is_path_byte);
        if token.is_empty() {
            return Err(self.error("expected an attribute name"));
        }
        let (urn, rest) = match token.rsplit_once(':') {
            Some((urn, rest)) => (Some(urn), rest),
            None => (None, token),
        };
        if urn.is_some_and(str::is_empty) {
            return Err(self.error_at(start, "expected a schema URN before ':'"));
        }
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        let name_at = start + token.len() - rest.len();
        if !valid_name(name) {
            return Err(
                self.error_at(name_at, "expected an attribute name (a letter, then letters, digits, '_' or '-')")
            );
        }
        if let Some(sub) = sub
            && !valid_name(sub)
        {
            return Err(self.error_at(name_at + name.len() + 1, "expected one sub-attribute name after '.'"));
        }
        Ok(AttrPath { urn: urn.map(str::to_owned), name: name.to_owned(), sub: sub.map(str::to_owned) })
    }

    fn attr_expression(&mut self, depth: usize, in_value: bool) -> Result<Filter, ScimError> {
        let path = self.attr_path()?;
        if self.peek() == Some(b'[') {
            if in_value {
                return Err(self.error("value filters cannot be nested"));
            }
            if path.sub.is_some() {
                return Err(self.error("a value filter must follow the attribute, not a sub-attribute"));
            }
            let inner = self.value_filter(depth)?;
            if self.peek() == Some(b'.') {
                // `emails[type eq "work"].value eq "x"`: not in RFC 7644's filter grammar, but
                // clients send it; it means the element that meets both conditions.
                self.pos += 1;
                let sub_at = self.pos;
                let sub = self.take_while(is_path_byte).to_owned();
                if !valid_name(&sub) || sub.contains('.') {
                    return Err(self.error_at(sub_at, "expected one sub-attribute name after ']."));
                }
                let condition = self.comparison(AttrPath { urn: None, name: sub, sub: None })?;
                return Ok(Filter::ValuePath(path, Box::new(Filter::And(Box::new(inner), Box::new(condition)))));
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.comparison(path)
    }

    /// What follows an attribute path: `pr`, or an operator and a value.
    fn comparison(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let before_ws = self.pos;
        self.skip_ws();
        let op_at = self.pos;
        let word = self.take_while(|b| b.is_ascii_alphabetic());
        if op_at == before_ws || self.peek().is_some_and(is_path_byte) {
            self.pos = op_at;
            return Err(
                self.error(&format!("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr) after '{path}'"))
            );
        }
        if word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(word) else {
            self.pos = op_at;
            return Err(
                self.error(&format!("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr) after '{path}'"))
            );
        };
        self.skip_ws();
        let value = self.comp_value(op)?;
        Ok(Filter::Compare(path, op, value))
    }

    fn comp_value(&mut self, op: CompareOp) -> Result<CompValue, ScimError> {
        let start = self.pos;
        let expected = format!(
            "expected a value after '{}' (a string in double quotes, a number, true, false or null)",
            op.as_str()
        );
        match self.peek() {
            Some(b'"') => self.string_literal(),
            Some(b'-' | b'0'..=b'9') => {
                let text = self.take_while(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
                serde_json::from_str::<Number>(text)
                    .map(CompValue::Num)
                    .map_err(|_| self.error_at(start, &format!("'{text}' is not a JSON number")))
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let word = self.take_while(|b| b.is_ascii_alphanumeric());
                if word.eq_ignore_ascii_case("true") {
                    Ok(CompValue::Bool(true))
                } else if word.eq_ignore_ascii_case("false") {
                    Ok(CompValue::Bool(false))
                } else if word.eq_ignore_ascii_case("null") {
                    Ok(CompValue::Null)
                } else {
                    Err(self.error_at(start, &expected))
                }
            }
            _ => Err(self.error(&expected)),
        }
    }

    /// A JSON string literal with its escapes, starting at the opening quote.
    fn string_literal(&mut self) -> Result<CompValue, ScimError> {
        let start = self.pos;
        let mut i = start + 1;
        loop {
            match self.bytes.get(i) {
                None => return Err(self.error_at(start, "the string is not closed by '\"'")),
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        let literal = self.src.get(start..=i).unwrap_or_default();
        let value = serde_json::from_str::<String>(literal).map_err(|e| {
            self.error_at(
                start + e.column().saturating_sub(1),
                "invalid string literal (JSON escapes: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
            )
        })?;
        self.pos = i + 1;
        Ok(CompValue::Str(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str) -> AttrPath {
        AttrPath::new(name)
    }
    fn cmp(path: AttrPath, op: CompareOp, v: CompValue) -> Filter {
        Filter::Compare(path, op, v)
    }
    fn s(v: &str) -> CompValue {
        CompValue::Str(v.into())
    }
    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }
    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }
    fn err(s: &str) -> String {
        let e = parse_filter(s).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter")), "{s}");
        e.detail
    }

    #[test]
    fn parses_the_rfc_7644_examples() {
        let examples = [
            r#"userName Eq "john""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            "title pr",
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            "a pr or (b pr or c pr)",
            "a pr and (b pr and c pr)",
            "(a pr or b pr) and (c pr or d pr)",
        ];
        for example in examples {
            let filter = parse_filter(example).unwrap_or_else(|e| panic!("{example}: {e}"));
            // Display writes a filter that parses back to the same tree.
            assert_eq!(parse_filter(&filter.to_string()).unwrap(), filter, "{example}");
        }
    }

    #[test]
    fn trees_have_the_right_shape() {
        assert_eq!(
            parse_filter(r#"userName EQ "bjensen""#).unwrap(),
            cmp(attr("userName"), CompareOp::Eq, s("bjensen"))
        );
        // and binds tighter than or
        assert_eq!(
            parse_filter("a pr or b pr and c pr").unwrap(),
            or(Filter::Present(attr("a")), and(Filter::Present(attr("b")), Filter::Present(attr("c"))))
        );
        assert_eq!(
            parse_filter("(a pr or b pr) and c pr").unwrap(),
            and(or(Filter::Present(attr("a")), Filter::Present(attr("b"))), Filter::Present(attr("c")))
        );
        assert_eq!(parse_filter("NOT(a pr)").unwrap(), Filter::Not(Box::new(Filter::Present(attr("a")))));
        assert_eq!(
            parse_filter(r#"emails[type eq "work" and value co "@x"]"#).unwrap(),
            Filter::ValuePath(
                attr("emails"),
                Box::new(and(cmp(attr("type"), CompareOp::Eq, s("work")), cmp(attr("value"), CompareOp::Co, s("@x"))))
            )
        );
        assert_eq!(
            parse_filter("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"42\"").unwrap(),
            cmp(
                attr("manager")
                    .with_urn("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
                    .with_sub("value"),
                CompareOp::Eq,
                s("42")
            )
        );
        // "not" and "or" as attribute names are still attributes
        assert_eq!(
            parse_filter("notes pr and order pr").unwrap(),
            and(Filter::Present(attr("notes")), Filter::Present(attr("order")))
        );
    }

    #[test]
    fn literals() {
        let value = |f: &str| match parse_filter(f).unwrap() {
            Filter::Compare(_, _, v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(value(r#"a eq "q\"b\\s\u00e9\/""#), s("q\"b\\s\u{e9}/"));
        assert_eq!(value(r#"a eq "日本""#), s("日本"));
        assert_eq!(value("a gt 10"), CompValue::Num(10.into()));
        assert_eq!(value("a gt -1.5e3").to_string(), "-1500.0");
        assert_eq!(value("a eq True"), CompValue::Bool(true));
        assert_eq!(value("a eq false"), CompValue::Bool(false));
        assert_eq!(value("a eq null"), CompValue::Null);
        assert_eq!(value(r#"a eq "a]b)c""#), s("a]b)c"));
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        assert_eq!(
            err("userName"),
            "invalid filter at character 9 (found the end): expected an operator (eq, ne, co, \
             sw, ew, gt, ge, lt, le or pr) after 'userName'"
        );
        assert!(err(r#"userName eq "x" garbage"#).contains("character 17"));
        assert!(err(r#"userName xx "x""#).contains("character 10"));
        assert!(err("userName eq").contains("expected a value after 'eq'"));
        assert!(err("userName eq bob").contains("expected a value"));
        assert!(err(r#"userName eq "open"#).contains("not closed"));
        assert!(err(r#"a eq "\x""#).contains("invalid string literal"));
        assert!(err("title pr \"x\"").contains("expected 'and', 'or'"));
        assert!(err("(a pr").contains("expected ')'"));
        assert!(err("a pr)").contains("character 5"));
        assert!(err("").contains("empty"));
        assert!(err("   ").contains("empty"));
        assert!(err("emails[type eq \"work\"").contains("expected ']'"));
        assert!(err("emails[a[b pr]]").contains("cannot be nested"));
        // A sub-attribute after the brackets (outside RFC 7644's grammar, sent by clients): the
        // element meeting both conditions.
        assert_eq!(
            parse_filter("emails[type pr].value eq \"x\"").unwrap(),
            Filter::ValuePath(
                AttrPath { urn: None, name: "emails".into(), sub: None },
                Box::new(and(
                    Filter::Present(AttrPath { urn: None, name: "type".into(), sub: None }),
                    Filter::Compare(AttrPath { urn: None, name: "value".into(), sub: None }, CompareOp::Eq, s("x"))
                ))
            )
        );
        assert!(err("emails[type pr].").contains("sub-attribute"));
        assert!(err("name.a.b pr").contains("one sub-attribute"));
        assert!(err("1abc pr").contains("expected an attribute name"));
        assert!(err(":abc pr").contains("URN"));
        assert!(err("a eq 1.2.3").contains("not a JSON number"));
        assert!(err("é eq 1").contains("character 1 (found 'é')"));
        assert!(err("a pr and").contains("expected an attribute name"));
    }

    #[test]
    fn abuse_is_bounded() {
        let deep = format!("{}a pr{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&deep).contains("20004 bytes long; at most 8192"));
        let deep = format!("{}a pr{}", "(".repeat(4_000), ")".repeat(4_000));
        assert!(err(&deep).contains("nested more than 32 levels"));
        let nots = "not (".repeat(1_500);
        assert!(err(&nots).contains("nested more than 32 levels"));
        let ok = format!("{}a pr{}", "(".repeat(31), ")".repeat(31));
        assert!(parse_filter(&ok).is_ok());
        let long_chain = vec!["a pr"; 900].join(" and ");
        assert!(parse_filter(&long_chain).is_ok());

        // pseudo-random garbage from a fixed seed: never a panic, always an answer
        let alphabet: Vec<char> = "ab (\"\\)[].:eqprandornot 1-é\u{0}\ttrue".chars().collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let len = (state % 40) as usize;
            let input: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            if let Err(e) = parse_filter(&input) {
                assert_eq!(e.scim_type, Some("invalidFilter"));
            }
            if let Err(e) = parse_path(&input) {
                assert_eq!(e.scim_type, Some("invalidPath"));
            }
        }
    }

    #[test]
    fn patch_paths() {
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr, attr("emails"));
        assert_eq!(p.filter, Some(cmp(attr("type"), CompareOp::Eq, s("work"))));
        assert_eq!(p.sub.as_deref(), Some("value"));
        assert_eq!(p.sub_attr(), Some("value"));
        assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);

        let p = parse_path("name.givenName").unwrap();
        assert_eq!(p.attr, attr("name").with_sub("givenName"));
        assert_eq!((p.filter.as_ref(), p.sub_attr()), (None, Some("givenName")));

        let p = parse_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
        assert!(p.attr.name_is("MEMBERS") && p.filter.is_some() && p.sub.is_none());

        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").unwrap();
        assert_eq!(p.attr.urn.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").unwrap();
        assert_eq!(
            (p.attr.urn.as_deref(), p.attr.name.as_str()),
            (Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0"), "User")
        );

        for bad in ["", "emails[", "emails[type eq]", "a b", "name.givenName[x pr]", "emails[type pr].", "a]"] {
            let e = parse_path(bad).unwrap_err();
            assert_eq!(e.scim_type, Some("invalidPath"), "{bad}");
            assert!(e.detail.starts_with("invalid path at character"), "{bad}: {}", e.detail);
        }
    }

    #[test]
    fn attr_path_helpers() {
        let a = parse_attr_path("urn:ietf:params:scim:schemas:core:2.0:User:Name.GivenName").unwrap();
        let b = attr("name").with_urn("urn:ietf:params:scim:schemas:core:2.0:user").with_sub("givenname");
        assert!(a.eq_ignore_case(&b) && a != b);
        assert!(a.name_is("NAME") && a.sub_is("givenname"));
        assert!(!a.eq_ignore_case(&attr("name")));
        assert!(parse_attr_path("emails[type pr]").is_err());
        assert_eq!(parse_attr_path(" members.$ref ").unwrap(), attr("members").with_sub("$ref"));
    }

    #[test]
    fn eq_conditions() {
        let f = parse_filter(r#"type eq "work" and primary eq true"#).unwrap();
        let conds = f.eq_conditions().unwrap();
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[1], (&attr("primary"), &CompValue::Bool(true)));
        assert!(parse_filter(r#"type eq "work" or type eq "home""#).unwrap().eq_conditions().is_none());
        assert!(parse_filter(r#"value co "x""#).unwrap().eq_conditions().is_none());
    }
}
