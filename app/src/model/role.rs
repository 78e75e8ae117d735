use serde::{Deserialize, Serialize};
use std::fmt;

/// The three kinds of portal users. Stored in MySQL as the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    TechnicalWorker,
    SeniorManagement,
}

impl Role {
    pub const ALL: [Role; 3] = [
        Role::Customer,
        Role::TechnicalWorker,
        Role::SeniorManagement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::TechnicalWorker => "technical_worker",
            Role::SeniorManagement => "senior_management",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| {
                "Role must be customer, technical worker or senior management".to_string()
            })
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Customer => "Customer",
            Role::TechnicalWorker => "Technical worker",
            Role::SeniorManagement => "Senior management",
        }
    }

    /// The dashboard each role lands on.
    pub fn home(self) -> &'static str {
        match self {
            Role::Customer => "/customer",
            Role::TechnicalWorker => "/worker",
            Role::SeniorManagement => "/management",
        }
    }

    /// Privileged roles are created `pending` and need a senior manager's approval.
    pub fn needs_approval(self) -> bool {
        self.is_staff()
    }

    /// Staff change what the chain reports on, or who may do what: their logins need a
    /// second factor.
    pub fn needs_second_factor(self) -> bool {
        self.is_staff()
    }

    pub fn is_staff(self) -> bool {
        !matches!(self, Role::Customer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Pending,
    Disabled,
}

impl AccountStatus {
    pub const ALL: [AccountStatus; 3] = [
        AccountStatus::Active,
        AccountStatus::Pending,
        AccountStatus::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Pending => "pending",
            AccountStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        AccountStatus::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| format!("unknown account status {s:?}"))
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Both enums are stored as MySQL ENUMs of their `as_str` names and decode straight
/// into the Rust type, so no query handles them as loose strings.
#[cfg(feature = "ssr")]
macro_rules! mysql_enum_impl {
    ($ty:ty) => {
        impl sqlx::Type<sqlx::MySql> for $ty {
            fn type_info() -> sqlx::mysql::MySqlTypeInfo {
                <str as sqlx::Type<sqlx::MySql>>::type_info()
            }
            fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::MySql>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::MySql> for $ty {
            fn decode(
                value: sqlx::mysql::MySqlValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::MySql>>::decode(value)?;
                Ok(<$ty>::parse(text)?)
            }
        }

        impl sqlx::Encode<'_, sqlx::MySql> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<u8>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::MySql>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}

#[cfg(feature = "ssr")]
pub(crate) use mysql_enum_impl as mysql_enum;

/// An enum stored by name: `as_str`, `parse`, `ALL` and `Display` from one table of
/// variants and names, and the MySQL encoding. Only server-side enums use it.
#[cfg(feature = "ssr")]
macro_rules! string_enum_impl {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(concat!("unknown ", stringify!($ty), " {:?}"), other)),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::model::role::mysql_enum!($ty);
    };
}

#[cfg(feature = "ssr")]
pub(crate) use string_enum_impl as string_enum;

#[cfg(feature = "ssr")]
mysql_enum!(Role);
#[cfg(feature = "ssr")]
mysql_enum!(AccountStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("admin").is_err());
        assert!(Role::parse("Customer").is_err(), "names are exact");
    }

    #[test]
    fn only_customers_skip_approval() {
        assert!(!Role::Customer.needs_approval());
        assert!(Role::TechnicalWorker.needs_approval());
        assert!(Role::SeniorManagement.needs_approval());
    }

    #[test]
    fn statuses_round_trip() {
        for s in AccountStatus::ALL {
            assert_eq!(AccountStatus::parse(s.as_str()), Ok(s));
        }
        assert!(AccountStatus::parse("gone").is_err());
    }
}
