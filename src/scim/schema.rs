//! The schemas Roster publishes (RFC 7643 section 4): the core User with the enterprise
//! extension, and Group, as static attribute definitions with their characteristics, and the
//! lookup that resolves an attribute path against them (case-insensitive, with or without the
//! schema URN). The discovery documents (`discovery`) and the canonical resource form
//! (`resource`: `canonicalize`, `project`) are built from these definitions and re-exported here.
//! Nothing in this module knows about storage or HTTP.

use super::filter::AttrPath;

pub use super::discovery::{list_response, resource_type, resource_types, schema, schemas, service_provider_config};
pub use super::resource::{MAX_STRING_CHARS, canonicalize, parse_attribute_list, project};

/// The core User schema.
pub const URN_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension; its attributes live under this key in a User.
pub const URN_ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The core Group schema.
pub const URN_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The list response message.
pub const URN_LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The PATCH request message.
pub const URN_PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The error message.
pub const URN_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The service provider configuration resource.
pub const URN_SERVICE_PROVIDER_CONFIG: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// The resource type resource.
pub const URN_RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// The schema resource.
pub const URN_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The two SCIM resource types Roster serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    /// The core schema URN of this resource type.
    pub fn core_urn(self) -> &'static str {
        match self {
            ResourceKind::User => URN_USER,
            ResourceKind::Group => URN_GROUP,
        }
    }

    /// The resource type name (`User`, `Group`), also `meta.resourceType`.
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }

    /// The schema extensions this resource type carries (`(urn, attributes)`).
    pub fn extensions(self) -> &'static [(&'static str, &'static [AttrDef])] {
        match self {
            ResourceKind::User => &USER_EXTENSIONS,
            ResourceKind::Group => &[],
        }
    }

    /// The attributes of the core schema (without the common `id`, `externalId`, `meta`).
    pub fn core_attrs(self) -> &'static [AttrDef] {
        match self {
            ResourceKind::User => USER_ATTRS,
            ResourceKind::Group => GROUP_ATTRS,
        }
    }
}

static USER_EXTENSIONS: [(&str, &[AttrDef]); 1] = [(URN_ENTERPRISE_USER, ENTERPRISE_USER_ATTRS)];

/// An attribute's data type (RFC 7643 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
}

impl AttrType {
    /// The name used in schema documents.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// When an attribute may be written (RFC 7643 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    /// The name used in schema documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute is returned (RFC 7643 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    /// The name used in schema documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// How unique a value must be (RFC 7643 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    /// The name used in schema documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute of a schema with its RFC 7643 characteristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrDef {
    pub name: &'static str,
    pub kind: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub sub_attributes: &'static [AttrDef],
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
}

impl AttrDef {
    const fn new(name: &'static str, kind: AttrType, description: &'static str) -> Self {
        AttrDef {
            name,
            kind,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            sub_attributes: &[],
            canonical_values: &[],
            reference_types: &[],
            description,
        }
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, mutability: Mutability) -> Self {
        self.mutability = mutability;
        self
    }
    const fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    const fn returned(mut self, returned: Returned) -> Self {
        self.returned = returned;
        self
    }
    const fn server_unique(mut self) -> Self {
        self.uniqueness = Uniqueness::Server;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }

    /// The sub-attribute named `name`, case-insensitively.
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef> {
        self.sub_attributes.iter().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// Whether a filter may compare this attribute directly: a simple attribute, or a complex
    /// one compared through its `value` sub-attribute.
    pub fn comparable(&self) -> Option<&AttrDef> {
        match self.kind {
            AttrType::Complex => self.sub("value"),
            _ => Some(self),
        }
    }
}

const fn string(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::String, description)
}
const fn boolean(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::Boolean, description)
}
const fn date_time(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::DateTime, description)
}
const fn reference(name: &'static str, types: &'static [&'static str], description: &'static str) -> AttrDef {
    let mut def = AttrDef::new(name, AttrType::Reference, description);
    def.reference_types = types;
    def
}
const fn complex(name: &'static str, subs: &'static [AttrDef], description: &'static str) -> AttrDef {
    let mut def = AttrDef::new(name, AttrType::Complex, description);
    def.sub_attributes = subs;
    def
}

static NAME_SUBS: [AttrDef; 6] = [
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name."),
    string("givenName", "The given name."),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "The honorific prefix (Ms., Dr.)."),
    string("honorificSuffix", "The honorific suffix (III, Jr.)."),
];

const fn typed_value_subs(value: AttrDef, types: &'static [&'static str]) -> [AttrDef; 4] {
    [
        value,
        string("display", "A human-readable name, primarily used for display."),
        string("type", "A label indicating the attribute's function.").canonical(types),
        boolean("primary", "Whether this is the primary value; true at most once."),
    ]
}

// Roster needs an address for every member (the primary, else `work`, else first email is their
// sign-in address), so `emails` and each email's `value` are required.
static EMAIL_SUBS: [AttrDef; 4] =
    typed_value_subs(string("value", "The email address.").required(), &["work", "home", "other"]);
static PHONE_SUBS: [AttrDef; 4] =
    typed_value_subs(string("value", "The phone number."), &["work", "home", "mobile", "fax", "pager", "other"]);
static IM_SUBS: [AttrDef; 4] = typed_value_subs(
    string("value", "The instant messaging address."),
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
);
static PHOTO_SUBS: [AttrDef; 4] =
    typed_value_subs(reference("value", &["external"], "The URL of a photo of the user."), &["photo", "thumbnail"]);
static ADDRESS_SUBS: [AttrDef; 8] = [
    string("formatted", "The full mailing address, formatted for display."),
    string("streetAddress", "The street address."),
    string("locality", "The city or locality."),
    string("region", "The state or region."),
    string("postalCode", "The zip code or postal code."),
    string("country", "The country name (ISO 3166-1 alpha-2)."),
    string("type", "A label indicating the address's function.").canonical(&["work", "home", "other"]),
    boolean("primary", "Whether this is the primary address; true at most once."),
];
static USER_GROUP_SUBS: [AttrDef; 4] = [
    string("value", "The identifier of the group.").read_only(),
    reference("$ref", &["User", "Group"], "The URI of the group.").read_only(),
    string("display", "The group's display name.").read_only(),
    string("type", "How the membership was derived.").canonical(&["direct", "indirect"]).read_only(),
];

/// The core User attributes (RFC 7643 section 4.1), without entitlements, roles and
/// x509Certificates, which Roster does not keep.
pub static USER_ATTRS: &[AttrDef] = &[
    string("userName", "Unique identifier for the user, used to sign in.").required().server_unique(),
    complex("name", &NAME_SUBS, "The components of the user's real name."),
    string("displayName", "The name of the user, suitable for display."),
    string("nickName", "The casual way to address the user."),
    reference("profileUrl", &["external"], "A URI pointing to the user's online profile."),
    string("title", "The user's title, such as \"Vice President\"."),
    string("userType", "The relationship between the organization and the user."),
    string("preferredLanguage", "The user's preferred written or spoken language."),
    string("locale", "The user's default location, for localizing items."),
    string("timezone", "The user's time zone in IANA format."),
    boolean("active", "The user's administrative status."),
    string("password", "The user's cleartext password, to set it; never returned.")
        .mutability(Mutability::WriteOnly)
        .returned(Returned::Never),
    complex(
        "emails",
        &EMAIL_SUBS,
        "Email addresses for the user. Roster requires one: the primary (else work, else first) is the member's sign-in address.",
    )
    .multi()
    .required(),
    complex("phoneNumbers", &PHONE_SUBS, "Phone numbers for the user.").multi(),
    complex("ims", &IM_SUBS, "Instant messaging addresses for the user.").multi(),
    complex("photos", &PHOTO_SUBS, "URLs of photos of the user.").multi(),
    complex("addresses", &ADDRESS_SUBS, "Physical mailing addresses for the user.").multi(),
    complex("groups", &USER_GROUP_SUBS, "The groups the user belongs to.").multi().read_only(),
];

static MANAGER_SUBS: [AttrDef; 3] = [
    string("value", "The id of the user's manager."),
    reference("$ref", &["User"], "The URI of the manager's User resource."),
    string("displayName", "The manager's display name.").read_only(),
];

/// The enterprise User extension attributes (RFC 7643 section 4.3).
pub static ENTERPRISE_USER_ATTRS: &[AttrDef] = &[
    string("employeeNumber", "A string identifier assigned by the organization."),
    string("costCenter", "The name of a cost center."),
    string("organization", "The name of an organization."),
    string("division", "The name of a division."),
    string("department", "The name of a department."),
    complex("manager", &MANAGER_SUBS, "The user's manager."),
];

static MEMBER_SUBS: [AttrDef; 4] = [
    string("value", "The id of the member.").mutability(Mutability::Immutable),
    reference("$ref", &["User", "Group"], "The URI of the member resource.").mutability(Mutability::Immutable),
    string("display", "The member's display name.").read_only(),
    string("type", "The type of the member.").canonical(&["User", "Group"]).mutability(Mutability::Immutable),
];

/// The core Group attributes (RFC 7643 section 4.2).
pub static GROUP_ATTRS: &[AttrDef] = &[
    string("displayName", "A human-readable name for the group.").required().server_unique(),
    complex("members", &MEMBER_SUBS, "The members of the group.").multi(),
];

static META_SUBS: [AttrDef; 5] = [
    string("resourceType", "The name of the resource type.").case_exact().read_only(),
    date_time("created", "When the resource was added.").read_only(),
    date_time("lastModified", "When the resource was last changed.").read_only(),
    reference("location", &["uri"], "The URI of the resource.").case_exact().read_only(),
    string("version", "The version (ETag) of the resource.").case_exact().read_only(),
];

/// The attributes every resource has (RFC 7643 section 3.1), outside any schema.
pub static COMMON_ATTRS: &[AttrDef] = &[
    string("id", "The service provider's unique identifier for the resource.")
        .case_exact()
        .read_only()
        .returned(Returned::Always)
        .server_unique(),
    string("externalId", "The provisioning client's identifier for the resource.").case_exact(),
    complex("meta", &META_SUBS, "Resource metadata.").read_only(),
];

/// An attribute path resolved against a resource type's schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The URN of the schema the attribute belongs to (the core URN for common attributes).
    pub schema: &'static str,
    /// The top-level attribute.
    pub attr: &'static AttrDef,
    /// The sub-attribute, when the path names one.
    pub sub: Option<&'static AttrDef>,
}

impl Resolved {
    /// Whether the attribute lives in the enterprise extension (under its URN key).
    pub fn is_extension(&self) -> bool {
        self.schema != URN_USER && self.schema != URN_GROUP
    }

    /// The attribute the path ends at: the sub-attribute if any, else the attribute.
    pub fn target(&self) -> &'static AttrDef {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical path, as written in errors: `name.givenName`, or the extension's
    /// `urn:...:User:manager.value`.
    pub fn display(&self) -> String {
        let prefix = if self.is_extension() { format!("{}:", self.schema) } else { String::new() };
        match self.sub {
            Some(sub) => format!("{prefix}{}.{}", self.attr.name, sub.name),
            None => format!("{prefix}{}", self.attr.name),
        }
    }
}

/// The schema URN a path names as a whole (`urn:...:enterprise:2.0:User` parses as URN
/// `urn:...:enterprise:2.0` and name `User`), among those of `kind`.
pub fn whole_schema(kind: ResourceKind, path: &AttrPath) -> Option<&'static str> {
    let urn = path.urn.as_deref()?;
    if path.sub.is_some() {
        return None;
    }
    std::iter::once(kind.core_urn()).chain(kind.extensions().iter().map(|(urn, _)| *urn)).find(|candidate| {
        candidate.len() == urn.len() + 1 + path.name.len()
            && candidate[..urn.len()].eq_ignore_ascii_case(urn)
            && candidate[urn.len() + 1..].eq_ignore_ascii_case(&path.name)
    })
}

/// Resolves `path` against `kind`'s schemas: names case-insensitive; core and common attributes
/// with or without the core URN; extension attributes only with their URN.
pub fn find(kind: ResourceKind, path: &AttrPath) -> Option<Resolved> {
    let (schema, attrs): (&'static str, &[&'static [AttrDef]]) = match path.urn.as_deref() {
        None => (kind.core_urn(), &[kind.core_attrs(), COMMON_ATTRS]),
        Some(urn) if urn.eq_ignore_ascii_case(kind.core_urn()) => (kind.core_urn(), &[kind.core_attrs(), COMMON_ATTRS]),
        Some(urn) => {
            let (ext, ext_attrs) = kind.extensions().iter().find(|(ext, _)| ext.eq_ignore_ascii_case(urn))?;
            return find_in(ext, ext_attrs, path);
        }
    };
    // An extension's attribute without its URN (Entra sends `manager`, `department` so): the
    // extension attributes share no name with the core ones, so the name alone is unambiguous.
    attrs.iter().find_map(|defs| find_in(schema, defs, path)).or_else(|| {
        if path.urn.is_some() {
            return None;
        }
        kind.extensions().iter().find_map(|(ext, ext_attrs)| find_in(ext, ext_attrs, path))
    })
}

fn find_in(schema: &'static str, defs: &'static [AttrDef], path: &AttrPath) -> Option<Resolved> {
    let attr = defs.iter().find(|d| d.name.eq_ignore_ascii_case(&path.name))?;
    let sub = match path.sub.as_deref() {
        None => None,
        Some(sub) => Some(attr.sub(sub)?),
    };
    Some(Resolved { schema, attr, sub })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> AttrPath {
        crate::scim::filter::parse_attr_path(s).unwrap()
    }

    #[test]
    fn finds_core_attributes_in_any_case_with_or_without_urn() {
        let r = find(ResourceKind::User, &path("USERNAME")).unwrap();
        assert_eq!((r.schema, r.attr.name, r.sub), (URN_USER, "userName", None));
        let r = find(ResourceKind::User, &path("urn:ietf:params:scim:schemas:core:2.0:User:name.FamilyName")).unwrap();
        assert_eq!((r.attr.name, r.sub.unwrap().name), ("name", "familyName"));
        assert_eq!(r.display(), "name.familyName");
        let r = find(ResourceKind::User, &path("meta.lastModified")).unwrap();
        assert_eq!(r.target().kind, AttrType::DateTime);
        assert!(find(ResourceKind::User, &path("name.nope")).is_none());
        assert!(find(ResourceKind::User, &path("members")).is_none());
        assert!(find(ResourceKind::Group, &path("members.value")).is_some());
    }

    #[test]
    fn enterprise_attributes_with_or_without_their_urn() {
        let r = find(ResourceKind::User, &path("department")).unwrap();
        assert_eq!((r.schema, r.attr.name), (URN_ENTERPRISE_USER, "department"));
        let r =
            find(ResourceKind::User, &path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"))
                .unwrap();
        assert!(r.is_extension());
        assert_eq!((r.attr.name, r.sub.unwrap().name), ("manager", "value"));
        assert_eq!(r.display(), "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value");
        assert!(
            find(ResourceKind::Group, &path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"))
                .is_none()
        );
        assert_eq!(
            whole_schema(ResourceKind::User, &path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user")),
            Some(URN_ENTERPRISE_USER)
        );
    }

    #[test]
    fn characteristics_follow_rfc_7643() {
        let user = |name: &str| find(ResourceKind::User, &path(name)).unwrap().target();
        assert!(user("userName").required && !user("userName").case_exact);
        assert_eq!(user("userName").uniqueness, Uniqueness::Server);
        assert_eq!(user("password").returned, Returned::Never);
        assert_eq!(user("password").mutability, Mutability::WriteOnly);
        assert_eq!(user("id").returned, Returned::Always);
        assert!(user("id").case_exact && user("externalId").case_exact);
        assert_eq!(user("groups").mutability, Mutability::ReadOnly);
        assert_eq!(user("emails.type").canonical_values, ["work", "home", "other"]);
        let member = find(ResourceKind::Group, &path("members.value")).unwrap();
        assert_eq!(member.target().mutability, Mutability::Immutable);
    }
}
