//! The one definition of a sale, shared by the WASM UI, the server, both stores and
//! the importer. Every field is a type that can only hold a valid value; `SaleInput`
//! is what a form or a file provides, and `SaleInput::parse` is the single gate.

use super::string_enum::string_enum;
use super::{Email, FieldError};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const MAX_ITEMS: usize = 100;
pub const MAX_TAGS: usize = 20;

/// A MongoDB ObjectId as 24 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SaleId(String);

impl SaleId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_ascii_lowercase();
        if s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s))
        } else {
            Err("A sale id is 24 hexadecimal digits".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for invisible formatting characters (Unicode category Cf: bidirectional
/// overrides, zero-width spaces and joiners, the byte-order mark, tag characters): they
/// make text shown to staff read differently from what it is.
pub fn is_hidden_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// Trimmed text of 1..=max characters with no control or invisible formatting
/// characters and no leading `$` (which MongoDB tools read as an operator).
fn parse_text(raw: &str, what: &str, max: usize) -> Result<String, String> {
    let s = raw.trim();
    let len = s.chars().count();
    if len == 0 {
        return Err(format!("{what} is required"));
    }
    if len > max {
        return Err(format!("{what} must be at most {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{what} may not contain control characters"));
    }
    if s.chars().any(is_hidden_format) {
        return Err(format!(
            "{what} may not contain invisible formatting characters (such as direction overrides or zero-width spaces)"
        ));
    }
    if s.starts_with('$') {
        return Err(format!("{what} may not start with '$'"));
    }
    Ok(s.to_string())
}

macro_rules! text_type {
    ($name:ident, $what:literal, $max:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, String> {
                parse_text(raw, $what, $max).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(StoreLocation, "Store location", 64);
text_type!(ItemName, "Item name", 64);
text_type!(Tag, "Tag", 32);

macro_rules! bounded_int {
    ($name:ident, $ty:ty, $min:literal, $max:literal, $msg:literal) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name($ty);

        impl $name {
            pub fn parse(n: i64) -> Result<Self, String> {
                if ($min..=$max).contains(&n) {
                    Ok(Self(n as $ty))
                } else {
                    Err($msg.into())
                }
            }
            pub fn parse_str(raw: &str) -> Result<Self, String> {
                raw.trim()
                    .parse::<i64>()
                    .map_err(|_| $msg.to_string())
                    .and_then(Self::parse)
            }
            pub fn get(self) -> $ty {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(n: i64) -> Result<Self, String> {
                Self::parse(n)
            }
        }

        impl From<$name> for i64 {
            fn from(v: $name) -> i64 {
                v.0 as i64
            }
        }
    };
}

bounded_int!(
    Quantity,
    u16,
    1,
    1000,
    "Quantity must be a whole number from 1 to 1000"
);
bounded_int!(Age, u8, 0, 120, "Age must be a whole number from 0 to 120");
bounded_int!(
    Satisfaction,
    u8,
    1,
    5,
    "Satisfaction must be a whole number from 1 to 5"
);

/// A unit price: above 0, at most 1,000,000, at most 2 decimal places. Exact decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Price(Decimal);

impl Price {
    pub fn parse(d: Decimal) -> Result<Self, String> {
        if d <= Decimal::ZERO {
            return Err("Price must be above 0".into());
        }
        if d > Decimal::from(1_000_000) {
            return Err("Price must be at most 1,000,000".into());
        }
        if d.normalize().scale() > 2 {
            return Err("Price may have at most 2 decimal places".into());
        }
        Ok(Self(d))
    }

    pub fn parse_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        // Plain decimal notation only: no exponents, signs or thousands separators.
        if raw.is_empty() || !raw.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err("Price must be a number like 12.50".into());
        }
        let d: Decimal = raw
            .parse()
            .map_err(|_| "Price must be a number like 12.50".to_string())?;
        Self::parse(d)
    }

    pub fn get(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Price {
    type Error = String;
    fn try_from(d: Decimal) -> Result<Self, String> {
        Self::parse(d)
    }
}

impl From<Price> for Decimal {
    fn from(p: Price) -> Decimal {
        p.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PurchaseMethod {
    #[serde(rename = "In store")]
    InStore,
    Online,
    Phone,
}

string_enum!(PurchaseMethod {
    InStore => "In store",
    Online => "Online",
    Phone => "Phone",
} else "Purchase method must be In store, Online or Phone");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Gender {
    #[serde(rename = "F")]
    Female,
    #[serde(rename = "M")]
    Male,
}

string_enum!(Gender {
    Female => "F",
    Male => "M",
} else "Gender must be F or M");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub name: ItemName,
    pub tags: Vec<Tag>,
    pub price: Price,
    pub quantity: Quantity,
}

impl Item {
    pub fn line_total(&self) -> Decimal {
        self.price.get() * Decimal::from(self.quantity.get())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub gender: Gender,
    pub age: Age,
    pub email: Email,
    pub satisfaction: Satisfaction,
}

/// A valid sale without its identity: what create and update write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleDraft {
    pub sale_date: DateTime<Utc>,
    pub items: Vec<Item>,
    pub store_location: StoreLocation,
    pub customer: Customer,
    pub coupon_used: bool,
    pub purchase_method: PurchaseMethod,
}

impl SaleDraft {
    /// Sum of price × quantity, exact.
    pub fn total(&self) -> Decimal {
        self.items.iter().map(Item::line_total).sum()
    }
}

/// A stored sale: the draft plus identity and concurrency control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    pub id: SaleId,
    /// Incremented by every write; updates and deletes must name the version they saw.
    pub version: u64,
    pub updated_at: DateTime<Utc>,
    #[serde(flatten)]
    pub draft: SaleDraft,
}

/// One line item as typed into a form or read from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemInput {
    pub name: String,
    /// Comma-separated in forms.
    pub tags: Vec<String>,
    pub price: String,
    pub quantity: String,
}

/// A sale as typed: every field a string, so nothing is lost before validation and
/// each problem can be reported against its field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleInput {
    /// RFC 3339, or `YYYY-MM-DDTHH:MM` from a datetime-local input (taken as UTC).
    pub sale_date: String,
    pub items: Vec<ItemInput>,
    pub store_location: String,
    pub customer_gender: String,
    pub customer_age: String,
    pub customer_email: String,
    pub customer_satisfaction: String,
    pub coupon_used: bool,
    pub purchase_method: String,
}

/// The earliest sale date accepted.
pub const FIRST_SALE_YEAR: i32 = 1970;

pub fn parse_sale_date(raw: &str) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    let parsed = DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| super::time::parse_minute(raw).map(|d| d.and_utc()))
        .ok_or("Sale date must be a date and time, like 2024-05-01T14:30")?;
    check_sale_date(parsed, None)?;
    Ok(parsed)
}

/// A sale date from 1970 on, and (when the current time is known: on the server) no
/// later than tomorrow.
pub fn check_sale_date(date: DateTime<Utc>, now: Option<DateTime<Utc>>) -> Result<(), String> {
    use chrono::Datelike;
    if date.year() < FIRST_SALE_YEAR {
        return Err(format!("Sale date must be in {FIRST_SALE_YEAR} or later"));
    }
    let latest = now.map_or(
        chrono::NaiveDate::from_ymd_opt(2100, 1, 1)
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()),
        |now| Some(now + chrono::Duration::days(1)),
    );
    if latest.is_some_and(|latest| date > latest) {
        return Err("Sale date cannot be later than tomorrow".into());
    }
    Ok(())
}

impl SaleInput {
    /// Every problem at once, each named by its field (`items.2.price` for the third
    /// item's price), so forms can mark them all.
    /// `parse`, plus the bound only the server can check (its clock): no sale dated
    /// later than tomorrow.
    pub fn parse_at(&self, now: DateTime<Utc>) -> Result<SaleDraft, Vec<FieldError>> {
        let draft = self.parse()?;
        check_sale_date(draft.sale_date, Some(now))
            .map_err(|m| vec![FieldError::new("sale_date", m)])?;
        Ok(draft)
    }

    pub fn parse(&self) -> Result<SaleDraft, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let sale_date = field(e, "sale_date", parse_sale_date(&self.sale_date));
        let store_location = field(
            e,
            "store_location",
            StoreLocation::parse(&self.store_location),
        );
        let gender = field(e, "customer_gender", Gender::parse(&self.customer_gender));
        let age = field(e, "customer_age", Age::parse_str(&self.customer_age));
        let email = field(e, "customer_email", Email::parse(&self.customer_email));
        let satisfaction = field(
            e,
            "customer_satisfaction",
            Satisfaction::parse_str(&self.customer_satisfaction),
        );
        let purchase_method = field(
            e,
            "purchase_method",
            PurchaseMethod::parse(&self.purchase_method),
        );
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            // Items past the limit are not looked at: their count is the one problem.
            e.push(FieldError::new(
                "items",
                format!("A sale has 1 to {MAX_ITEMS} items"),
            ));
            return Err(errors);
        }
        let items: Vec<Option<Item>> = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| item.parse(i, e))
            .collect();

        match (
            sale_date,
            store_location,
            gender,
            age,
            email,
            satisfaction,
            purchase_method,
        ) {
            (
                Some(sale_date),
                Some(store_location),
                Some(gender),
                Some(age),
                Some(email),
                Some(satisfaction),
                Some(purchase_method),
            ) if errors.is_empty() => Ok(SaleDraft {
                sale_date,
                items: items.into_iter().flatten().collect(),
                store_location,
                customer: Customer {
                    gender,
                    age,
                    email,
                    satisfaction,
                },
                coupon_used: self.coupon_used,
                purchase_method,
            }),
            _ => Err(errors),
        }
    }
}

impl ItemInput {
    fn parse(&self, i: usize, e: &mut Vec<FieldError>) -> Option<Item> {
        let name = field(e, &format!("items.{i}.name"), ItemName::parse(&self.name));
        let price = field(
            e,
            &format!("items.{i}.price"),
            Price::parse_str(&self.price),
        );
        let quantity = field(
            e,
            &format!("items.{i}.quantity"),
            Quantity::parse_str(&self.quantity),
        );
        let tags: Vec<&str> = self
            .tags
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        let tags = if tags.len() > MAX_TAGS {
            Err(format!("An item has at most {MAX_TAGS} tags"))
        } else {
            tags.into_iter().map(Tag::parse).collect()
        };
        let tags = field(e, &format!("items.{i}.tags"), tags);
        Some(Item {
            name: name?,
            tags: tags?,
            price: price?,
            quantity: quantity?,
        })
    }
}

/// Keeps a field's value, or records its message and yields `None`.
fn field<T>(errors: &mut Vec<FieldError>, name: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|m| errors.push(FieldError::new(name, m)))
        .ok()
}

impl From<&SaleDraft> for SaleInput {
    fn from(d: &SaleDraft) -> Self {
        SaleInput {
            sale_date: d
                .sale_date
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            items: d
                .items
                .iter()
                .map(|i| ItemInput {
                    name: i.name.to_string(),
                    tags: i.tags.iter().map(ToString::to_string).collect(),
                    price: i.price.get().to_string(),
                    quantity: i.quantity.get().to_string(),
                })
                .collect(),
            store_location: d.store_location.to_string(),
            customer_gender: d.customer.gender.as_str().into(),
            customer_age: d.customer.age.get().to_string(),
            customer_email: d.customer.email.to_string(),
            customer_satisfaction: d.customer.satisfaction.get().to_string(),
            coupon_used: d.coupon_used,
            purchase_method: d.purchase_method.as_str().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn valid_input() -> SaleInput {
        SaleInput {
            sale_date: "2015-03-23T21:06:49.506Z".into(),
            items: vec![ItemInput {
                name: "printer paper".into(),
                tags: vec!["office".into(), "stationary".into()],
                price: "40.01".into(),
                quantity: "2".into(),
            }],
            store_location: "Denver".into(),
            customer_gender: "M".into(),
            customer_age: "42".into(),
            customer_email: "cauho@witwuta.sv".into(),
            customer_satisfaction: "4".into(),
            coupon_used: true,
            purchase_method: "Online".into(),
        }
    }

    fn error_for(input: &SaleInput, field: &str) -> String {
        let errors = input.parse().expect_err("should be rejected");
        errors
            .into_iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("no error for {field}"))
            .message
    }

    #[test]
    fn a_valid_sale_parses_and_totals_exactly() {
        let mut input = valid_input();
        input.items.push(ItemInput {
            name: "pens".into(),
            tags: vec![],
            price: "0.10".into(),
            quantity: "3".into(),
        });
        let draft = input.parse().unwrap();
        assert_eq!(draft.total(), "80.32".parse::<Decimal>().unwrap());
        assert_eq!(draft.sale_date.timestamp_millis(), 1_427_144_809_506);
        assert_eq!(
            SaleInput::from(&draft).parse().unwrap(),
            draft,
            "input round trip"
        );
    }

    #[test]
    fn item_count_limits() {
        let mut input = valid_input();
        input.items.clear();
        assert_eq!(error_for(&input, "items"), "A sale has 1 to 100 items");
        input.items = vec![valid_input().items[0].clone(); 101];
        assert_eq!(error_for(&input, "items"), "A sale has 1 to 100 items");
        input.items.truncate(100);
        assert!(input.parse().is_ok());
    }

    #[test]
    fn quantity_rules() {
        for (q, ok) in [
            ("0", false),
            ("1", true),
            ("1000", true),
            ("1001", false),
            ("2.5", false),
            ("-1", false),
            ("x", false),
        ] {
            let mut input = valid_input();
            input.items[0].quantity = q.into();
            assert_eq!(input.parse().is_ok(), ok, "quantity {q}");
        }
    }

    #[test]
    fn price_rules() {
        for (p, ok) in [
            ("0", false),
            ("-1", false),
            ("0.01", true),
            ("1000000", true),
            ("1000000.01", false),
            ("10.5", true),
            ("10.50", true),
            ("10.505", false),
            ("1e3", false),
            ("abc", false),
            ("", false),
        ] {
            let mut input = valid_input();
            input.items[0].price = p.into();
            assert_eq!(input.parse().is_ok(), ok, "price {p:?}");
        }
    }

    #[test]
    fn customer_rules() {
        for (age, ok) in [("0", true), ("120", true), ("121", false), ("-1", false)] {
            let mut input = valid_input();
            input.customer_age = age.into();
            assert_eq!(input.parse().is_ok(), ok, "age {age}");
        }
        for (s, ok) in [("0", false), ("1", true), ("5", true), ("6", false)] {
            let mut input = valid_input();
            input.customer_satisfaction = s.into();
            assert_eq!(input.parse().is_ok(), ok, "satisfaction {s}");
        }
        let mut input = valid_input();
        input.customer_email = "not-an-email".into();
        assert!(error_for(&input, "customer_email").contains("valid email"));
        input = valid_input();
        input.customer_gender = "X".into();
        assert_eq!(
            error_for(&input, "customer_gender"),
            "Gender must be F or M"
        );
    }

    #[test]
    fn method_and_text_rules() {
        let mut input = valid_input();
        input.purchase_method = "Mail".into();
        assert_eq!(
            error_for(&input, "purchase_method"),
            "Purchase method must be In store, Online or Phone"
        );
        for (store, ok) in [
            ("  Denver  ", true),
            ("", false),
            (&"x".repeat(65), false),
            ("Den\u{0}ver", false),
            ("$where", false),
        ] {
            let mut input = valid_input();
            input.store_location = store.to_string();
            assert_eq!(input.parse().is_ok(), ok, "store {store:?}");
        }
        let draft = {
            let mut i = valid_input();
            i.store_location = "  Denver ".into();
            i.parse().unwrap()
        };
        assert_eq!(draft.store_location.as_str(), "Denver", "text is trimmed");
        let mut input = valid_input();
        input.items[0].name = "x".repeat(65);
        assert_eq!(
            error_for(&input, "items.0.name"),
            "Item name must be at most 64 characters"
        );
        input = valid_input();
        input.items[0].tags = vec!["t".into(); 21];
        assert_eq!(
            error_for(&input, "items.0.tags"),
            "An item has at most 20 tags"
        );
        input.items[0].tags = vec!["x".repeat(33)];
        assert_eq!(
            error_for(&input, "items.0.tags"),
            "Tag must be at most 32 characters"
        );
        input.items[0].tags = vec!["$gt".into()];
        assert!(input.parse().is_err());
    }

    #[test]
    fn dates_accept_rfc3339_and_form_input() {
        assert!(parse_sale_date("2024-05-01T14:30").is_ok());
        assert!(parse_sale_date("2024-05-01T14:30:00+02:00").is_ok());
        assert!(parse_sale_date("yesterday").is_err());
    }

    #[test]
    fn deserializing_enforces_the_rules_too() {
        let bad = r#"{"name":"pens","tags":[],"price":"-1","quantity":2}"#;
        assert!(serde_json::from_str::<Item>(bad).is_err());
        let good = r#"{"name":"pens","tags":["office"],"price":"1.25","quantity":2}"#;
        assert_eq!(
            serde_json::from_str::<Item>(good)
                .unwrap()
                .line_total()
                .to_string(),
            "2.50"
        );
    }

    #[test]
    fn sale_ids_are_object_ids() {
        assert!(SaleId::parse("5BD761DCAE323E45A93CCFE8").is_ok());
        assert!(SaleId::parse("xyz").is_err());
    }
}
