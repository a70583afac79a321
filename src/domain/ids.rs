//! Newtype ids: UUIDv7 (time-ordered), stored as text, shown as the canonical hyphenated form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[schema(value_type = String, format = Uuid, example = "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e2f")]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The stored text form.
            pub fn as_text(&self) -> String {
                self.0.hyphenated().to_string()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a tenant (an account).
    TenantId
);
id_type!(
    /// Identifies a person's global identity; also names their membership inside a tenant.
    UserId
);
id_type!(
    /// Identifies a region of one tenant.
    RegionId
);
id_type!(
    /// Identifies an API key of one tenant (not its secret).
    ApiKeyId
);
id_type!(
    /// Identifies a group of one tenant (written by the directory over SCIM).
    GroupId
);

/// Parses a stored id; stored ids are always valid, so a failure is a data corruption.
pub fn parse_stored<T: FromStr + Default>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        log::error!("corrupt id in database: {s:?}");
        T::default()
    })
}
