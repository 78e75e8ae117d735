use super::string_enum::string_enum;
use serde::{Deserialize, Serialize};

/// The three kinds of portal users. Stored in MySQL as the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    TechnicalWorker,
    SeniorManagement,
}

impl Role {
    /// Who works on the sales: the staff's pages and server functions.
    pub const STAFF: &'static [Role] = &[Role::TechnicalWorker, Role::SeniorManagement];
    /// Who sees the analytics and decides on accounts.
    pub const MANAGEMENT: &'static [Role] = &[Role::SeniorManagement];
    /// Who has purchases of their own.
    pub const CUSTOMERS: &'static [Role] = &[Role::Customer];

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

string_enum!(Role {
    Customer => "customer",
    TechnicalWorker => "technical_worker",
    SeniorManagement => "senior_management",
} else "Role must be customer, technical worker or senior management");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Pending,
    Disabled,
    /// Closed by its owner: the row stays, without personal data, so the audit log
    /// keeps whose events these were.
    Closed,
}

string_enum!(AccountStatus {
    Active => "active",
    Pending => "pending",
    Disabled => "disabled",
    Closed => "closed",
} else "Status must be active, pending, disabled or closed");

impl AccountStatus {
    /// Disabled and closed accounts have no sessions.
    pub fn may_sign_in(self) -> bool {
        !matches!(self, AccountStatus::Disabled | AccountStatus::Closed)
    }
}

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
