//! What the dashboards read: sales lists with their filters, a customer's purchases,
//! and the management analytics. Shared by the WASM UI and the server.

use super::search::Search;
use super::string_enum::string_enum;
use super::{FieldError, PurchaseMethod, Sale, SaleId};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The sales table's page sizes; the first is the default.
pub const PAGE_SIZES: [u32; 3] = [25, 50, 100];
/// A search counts its matches up to this many, and beyond says "more than 10,000".
/// How deep it pages depends on how broad it is (`server::sales::list`).
pub const SEARCH_CAP: u64 = 10_000;
/// How deep an unsearched list may be paged: reaching row n reads n index entries, so
/// deeper rows are reached by narrowing the filters (a date range) instead. With the
/// count from the daily rollups (some 60,000 rows for five years of every store), a
/// request stays within its budget of 100,000 rows examined.
pub const DEEPEST_ROW: u64 = 30_000;
pub const PURCHASES_PAGE_SIZE: u32 = 10;

/// A column the sales table sorts by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortColumn {
    #[default]
    Date,
    Store,
    Method,
    Coupon,
    Customer,
    Items,
    Total,
}

string_enum!(SortColumn {
    Date => "date",
    Store => "store",
    Method => "method",
    Coupon => "coupon",
    Customer => "customer",
    Items => "items",
    Total => "total",
} else "Unknown sort order");

/// The sales table's order: a column and a direction (`date_desc`, `store_asc`…). Rows
/// equal in the column follow by date, then id, in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SaleSort {
    pub column: SortColumn,
    pub descending: bool,
}

impl Default for SaleSort {
    fn default() -> Self {
        SaleSort {
            column: SortColumn::Date,
            descending: true,
        }
    }
}

impl SaleSort {
    pub fn parse(raw: &str) -> Result<SaleSort, &'static str> {
        const UNKNOWN: &str = "Unknown sort order";
        let (column, direction) = raw.rsplit_once('_').ok_or(UNKNOWN)?;
        let descending = match direction {
            "asc" => false,
            "desc" => true,
            _ => return Err(UNKNOWN),
        };
        Ok(SaleSort {
            column: SortColumn::parse(column).map_err(|_| UNKNOWN)?,
            descending,
        })
    }

    pub fn as_string(self) -> String {
        let direction = if self.descending { "desc" } else { "asc" };
        format!("{}_{direction}", self.column.as_str())
    }

    /// The order a column's header link asks for: the other direction when the table is
    /// already sorted by it, otherwise the column's natural first order (largest, newest
    /// first for numbers and dates; A to Z for text).
    pub fn toggled(self, column: SortColumn) -> SaleSort {
        let descending = if self.column == column {
            !self.descending
        } else {
            matches!(
                column,
                SortColumn::Date | SortColumn::Items | SortColumn::Total | SortColumn::Coupon
            )
        };
        SaleSort { column, descending }
    }
}

/// The sales-table filters as they appear in the URL: every field optional text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SalesQuery {
    pub store: String,
    pub method: String,
    pub from: String,
    pub to: String,
    /// "", "yes" or "no".
    pub coupon: String,
    /// The search box: a sale id, or a word of the customer's address or an item.
    pub q: String,
    pub sort: String,
    /// Rows per page: one of `PAGE_SIZES`.
    pub size: String,
    pub page: String,
}

/// Parsed filters: only valid values exist here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SalesFilter {
    pub store: Option<String>,
    pub method: Option<PurchaseMethod>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub coupon: Option<bool>,
    pub search: Option<Search>,
    pub sort: SaleSort,
    /// Rows per page, one of `PAGE_SIZES`.
    pub size: u32,
    /// 1-based.
    pub page: u32,
}

impl SalesFilter {
    /// Rows before this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.size)
    }

    /// Whether the search is the only filter.
    pub fn is_search_only(&self) -> bool {
        self.store.is_none()
            && self.method.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.coupon.is_none()
    }
}

fn optional(raw: &str) -> Option<&str> {
    Some(raw.trim()).filter(|s| !s.is_empty())
}

pub fn parse_day(raw: &str, field: &str) -> Result<Option<NaiveDate>, FieldError> {
    optional(raw)
        .map(|s| {
            super::time::parse_day(s)
                .ok_or_else(|| FieldError::new(field, "Use a date like 2015-03-23"))
        })
        .transpose()
}

/// The analytics' date range, both ends inclusive and optional.
pub fn parse_range(
    from: &str,
    to: &str,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>), FieldError> {
    let (from, to) = (parse_day(from, "from")?, parse_day(to, "to")?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(FieldError::new(
            "to",
            "The end date is before the start date",
        ));
    }
    Ok((from, to))
}

impl SalesQuery {
    pub fn parse(&self) -> Result<SalesFilter, Vec<FieldError>> {
        fn keep<T>(errors: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
            r.map_err(|e| errors.push(e)).ok()
        }
        let mut errors = Vec::new();
        let method = keep(
            &mut errors,
            optional(&self.method)
                .map(|m| PurchaseMethod::parse(m).map_err(|e| FieldError::new("method", e)))
                .transpose(),
        );
        let from = keep(&mut errors, parse_day(&self.from, "from"));
        let to = keep(&mut errors, parse_day(&self.to, "to"));
        let coupon = keep(
            &mut errors,
            match optional(&self.coupon) {
                None => Ok(None),
                Some("yes") => Ok(Some(true)),
                Some("no") => Ok(Some(false)),
                Some(_) => Err(FieldError::new("coupon", "Coupon must be yes, no or any")),
            },
        );
        let sort = keep(
            &mut errors,
            optional(&self.sort)
                .map(|s| SaleSort::parse(s).map_err(|e| FieldError::new("sort", e)))
                .transpose(),
        );
        let page = keep(
            &mut errors,
            match optional(&self.page) {
                None => Ok(1),
                Some(p) => p
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=1_000_000).contains(p))
                    .ok_or_else(|| FieldError::new("page", "Page must be a positive number")),
            },
        );
        let store = optional(&self.store).map(|s| s.chars().take(64).collect::<String>());
        let search = Search::parse(&self.q);
        let size = keep(
            &mut errors,
            match optional(&self.size) {
                None => Ok(PAGE_SIZES[0]),
                Some(s) => s
                    .parse::<u32>()
                    .ok()
                    .filter(|s| PAGE_SIZES.contains(s))
                    .ok_or_else(|| FieldError::new("size", "Show 25, 50 or 100 rows a page")),
            },
        );
        if let (Some(Some(f)), Some(Some(t))) = (from, to)
            && f > t
        {
            errors.push(FieldError::new(
                "to",
                "The end date is before the start date",
            ));
        }
        match (method, from, to, coupon, sort, size, page) {
            (
                Some(method),
                Some(from),
                Some(to),
                Some(coupon),
                Some(sort),
                Some(size),
                Some(page),
            ) if errors.is_empty() => Ok(SalesFilter {
                store,
                method,
                from,
                to,
                coupon,
                search,
                sort: sort.unwrap_or_default(),
                size,
                page,
            }),
            _ => Err(errors),
        }
    }
}

impl SalesFilter {
    /// Whether the list would show this sale, as MySQL decides it (store and email
    /// compared without regard to case, as its collation does). The page uses it to
    /// tell a sale created elsewhere that it would list from one it would not.
    pub fn matches(&self, row: &SaleRow) -> bool {
        let day = row.sale_date.date_naive();
        self.store
            .as_ref()
            .is_none_or(|s| s.to_lowercase() == row.store_location.to_lowercase())
            && self.method.is_none_or(|m| m == row.purchase_method)
            && self.from.is_none_or(|f| day >= f)
            && self.to.is_none_or(|t| day <= t)
            && self.coupon.is_none_or(|c| c == row.coupon_used)
            && self
                .search
                .as_ref()
                .is_none_or(|s| s.matches(row.id.as_str(), &row.customer_email))
    }
}

/// One line of the sales table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRow {
    pub id: SaleId,
    pub sale_date: DateTime<Utc>,
    pub store_location: String,
    pub purchase_method: PurchaseMethod,
    pub coupon_used: bool,
    pub customer_email: String,
    pub items: u32,
    pub total: Decimal,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesPage {
    pub rows: Vec<SaleRow>,
    /// Sales matching the filters, over all pages (at least this many unless
    /// `matching_exact`).
    pub matching: u64,
    pub matching_exact: bool,
    pub page: u32,
    /// The pages that can be opened: a list pages only as deep as its budget of rows
    /// examined allows (`server::sales::list`).
    pub pages: u32,
    /// Rows per page.
    pub size: u32,
    /// Every store name, for the filter's choices.
    pub stores: Vec<String>,
    /// The change feed's position when this was read: the page follows the changes
    /// after it (`crate::live`).
    pub feed: u64,
}

/// A customer's own purchases, newest first, with their KPIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchases {
    pub count: u64,
    pub spent: Decimal,
    pub favourite_store: Option<String>,
    pub sales: Vec<Sale>,
    pub page: u32,
    pub pages: u32,
    /// The change feed's position when this was read: the page follows the changes
    /// after it (`crate::live`).
    pub feed: u64,
}

/// A sale loaded for editing, with a fresh submission token for the form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleForEdit {
    pub sale: Sale,
    pub token: String,
    /// The change feed's position when this was read: the page follows the changes
    /// after it (`crate::live`).
    pub feed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    pub label: String,
    pub revenue: Decimal,
    pub sales: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemSlice {
    pub name: String,
    pub revenue: Decimal,
    pub quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kpis {
    pub revenue: Decimal,
    pub sales: u64,
    /// Revenue per sale, to the cent.
    pub average_basket: Decimal,
    /// Share of sales with a coupon, 0..=1, to 4 decimals.
    pub coupon_rate: Decimal,
    /// Mean satisfaction score, to 2 decimals.
    pub average_satisfaction: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analytics {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub store: Option<String>,
    pub method: Option<PurchaseMethod>,
    pub kpis: Kpis,
    /// The same figures for the period of the same length just before, when the range
    /// has both ends.
    pub previous: Option<Kpis>,
    pub trend: super::analytics::Trend,
    pub by_store: Vec<Slice>,
    pub by_method: Vec<Slice>,
    /// Sales per satisfaction score 1..=5.
    pub satisfaction: [u64; 5],
    pub top_items: Vec<ItemSlice>,
    /// Every store with sales, for the store filter.
    pub stores: Vec<String>,
    /// The change feed's position when this was read: the page follows the changes
    /// after it (`crate::live`).
    pub feed: u64,
}

/// How many sales a list matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchCount {
    pub n: u64,
    /// False when counting stopped early (at `SEARCH_CAP`, or at the most rows a
    /// request may walk): then at least `n` match.
    pub exact: bool,
}

impl MatchCount {
    /// In words: a count that stopped early says so rather than guessing.
    pub fn describe(self) -> String {
        match (self.exact, self.n > SEARCH_CAP) {
            (true, _) => group_digits(&self.n.to_string()),
            (false, true) => format!("more than {}", group_digits(&SEARCH_CAP.to_string())),
            (false, false) => format!("at least {}", group_digits(&self.n.to_string())),
        }
    }
}

/// Digits with a comma every three from the right: `1234567` as `1,234,567`.
pub fn group_digits(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Money as the UI shows it: thousands separators and two decimals, exact.
pub fn money(d: Decimal) -> String {
    let rounded = d.round_dp(2);
    let text = format!("{rounded:.2}");
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "00"));
    format!("{sign}${}.{frac}", group_digits(int))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_matches_a_row_as_the_database_would() {
        let row = SaleRow {
            id: SaleId::parse("5bd761dcae323e45a93ccfe8").expect("an id"),
            sale_date: "2015-03-23T10:00:00Z".parse().expect("a time"),
            store_location: "New York".into(),
            purchase_method: PurchaseMethod::Online,
            coupon_used: true,
            customer_email: "Abc@example.com".into(),
            items: 1,
            total: Decimal::ONE,
            version: 1,
        };
        let filter = |q: SalesQuery| q.parse().expect("valid filters");
        assert!(filter(SalesQuery::default()).matches(&row));
        let q = SalesQuery {
            store: "new york".into(),
            method: "Online".into(),
            from: "2015-03-23".into(),
            to: "2015-03-23".into(),
            coupon: "yes".into(),
            q: "ABC@".into(),
            ..Default::default()
        };
        assert!(filter(q.clone()).matches(&row));
        for found in ["example", "5bd761dcae"] {
            let by = SalesQuery {
                q: found.into(),
                ..q.clone()
            };
            assert!(filter(by).matches(&row), "{found}");
        }
        for other in [
            SalesQuery {
                store: "Denver".into(),
                ..q.clone()
            },
            SalesQuery {
                method: "Phone".into(),
                ..q.clone()
            },
            SalesQuery {
                from: "2015-03-24".into(),
                to: String::new(),
                ..q.clone()
            },
            SalesQuery {
                to: "2015-03-22".into(),
                from: String::new(),
                ..q.clone()
            },
            SalesQuery {
                coupon: "no".into(),
                ..q.clone()
            },
            SalesQuery {
                q: "bc".into(),
                ..q.clone()
            },
            SalesQuery {
                q: "5bd761dcaf".into(),
                ..q.clone()
            },
        ] {
            assert!(!filter(other.clone()).matches(&row), "{other:?}");
        }
    }

    #[test]
    fn a_count_that_stopped_early_says_so() {
        let count = |n, exact| MatchCount { n, exact }.describe();
        assert_eq!(count(SEARCH_CAP, true), "10,000");
        assert_eq!(count(SEARCH_CAP + 1, false), "more than 10,000");
        assert_eq!(count(412, false), "at least 412");
    }

    #[test]
    fn money_is_exact_and_grouped() {
        assert_eq!(money("9894572.27".parse().unwrap()), "$9,894,572.27");
        assert_eq!(money("0.5".parse().unwrap()), "$0.50");
        assert_eq!(money("123".parse().unwrap()), "$123.00");
        assert_eq!(money("-1234.5".parse().unwrap()), "-$1,234.50");
    }

    #[test]
    fn filters_parse_or_name_the_field() {
        let q = SalesQuery {
            store: " Denver ".into(),
            method: "Online".into(),
            from: "2015-01-01".into(),
            to: "2015-12-31".into(),
            coupon: "yes".into(),
            q: "AB@".into(),
            sort: "total_desc".into(),
            size: "50".into(),
            page: "3".into(),
        };
        let f = q.parse().unwrap();
        assert_eq!(f.store.as_deref(), Some("Denver"));
        assert_eq!(f.method, Some(PurchaseMethod::Online));
        assert_eq!(f.coupon, Some(true));
        assert_eq!(f.search, Some(Search::Word("ab@".into())));
        assert_eq!(f.sort, SaleSort::parse("total_desc").unwrap());
        assert_eq!(
            (f.sort.column, f.sort.descending, f.size, f.page),
            (SortColumn::Total, true, 50, 3)
        );
        assert_eq!(f.offset(), 100);
        let default = SalesQuery::default().parse().unwrap();
        assert_eq!((default.size, default.page), (25, 1));

        let bad = SalesQuery {
            method: "Fax".into(),
            from: "yesterday".into(),
            size: "30".into(),
            page: "0".into(),
            ..Default::default()
        };
        let fields: Vec<String> = bad
            .parse()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["method", "from", "page", "size"]);
        let reversed = SalesQuery {
            from: "2016-01-01".into(),
            to: "2015-01-01".into(),
            ..Default::default()
        };
        assert_eq!(reversed.parse().unwrap_err()[0].field, "to");
    }
}
