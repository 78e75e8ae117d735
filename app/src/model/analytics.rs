//! What the management analytics are asked for (a range, a store, a purchase method) and
//! the figures that put their numbers in context: the previous period, and the trend.

use super::error::FieldError;
use super::report::parse_range;
use super::sale::PurchaseMethod;
use chrono::{Datelike, Days, Months, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The analytics page's URL state, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalyticsQuery {
    pub from: String,
    pub to: String,
    pub store: String,
    pub method: String,
}

/// What the analytics cover: valid values only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AnalyticsFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub store: Option<String>,
    pub method: Option<PurchaseMethod>,
}

impl AnalyticsQuery {
    pub fn parse(&self) -> Result<AnalyticsFilter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let (from, to) = match parse_range(&self.from, &self.to) {
            Ok(range) => range,
            Err(e) => {
                errors.push(e);
                (None, None)
            }
        };
        let method = match self.method.trim() {
            "" => None,
            m => PurchaseMethod::parse(m)
                .map_err(|e| errors.push(FieldError::new("method", e)))
                .ok(),
        };
        let store = Some(self.store.trim())
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(64).collect());
        if errors.is_empty() {
            Ok(AnalyticsFilter {
                from,
                to,
                store,
                method,
            })
        } else {
            Err(errors)
        }
    }
}

impl AnalyticsFilter {
    /// The period of the same length just before this one, when both ends are set (an
    /// open range has no length to repeat).
    pub fn previous(&self) -> Option<AnalyticsFilter> {
        let (from, to) = (self.from?, self.to?);
        let days = (to - from).num_days() as u64 + 1;
        Some(AnalyticsFilter {
            from: from.checked_sub_days(Days::new(days)),
            to: from.checked_sub_days(Days::new(1)),
            ..self.clone()
        })
    }

    /// The worker's sales table with these filters, from `from` to `to`: where a bar of
    /// the analytics leads.
    pub fn sales_table_href(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        store: Option<&str>,
        method: Option<PurchaseMethod>,
    ) -> String {
        let store = store.or(self.store.as_deref());
        let method = method.or(self.method);
        let mut pairs = Vec::new();
        if let Some(store) = store {
            pairs.push(("store", store.to_string()));
        }
        if let Some(method) = method {
            pairs.push(("method", method.as_str().to_string()));
        }
        if let Some(from) = from.or(self.from) {
            pairs.push(("from", from.to_string()));
        }
        if let Some(to) = to.or(self.to) {
            pairs.push(("to", to.to_string()));
        }
        let query: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", super::url::query_value(&v)))
            .collect();
        if query.is_empty() {
            "/worker".into()
        } else {
            format!("/worker?{}", query.join("&"))
        }
    }
}

/// The width of one point of the trend line: it follows the range shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Day,
    Week,
    Month,
}

impl Step {
    /// Two months or less by day, a year or less by week (weeks start on Monday), longer
    /// ranges by month: between a few and about 60 points per year shown.
    pub fn for_span(first: NaiveDate, last: NaiveDate) -> Step {
        match (last - first).num_days() + 1 {
            ..=62 => Step::Day,
            63..=366 => Step::Week,
            _ => Step::Month,
        }
    }

    /// The first day of the step that holds `day`.
    pub fn start_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Step::Day => day,
            Step::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Step::Month => day.with_day(1).unwrap_or(day),
        }
    }

    /// The first day of the next step after the one starting at `start`.
    pub fn next(self, start: NaiveDate) -> Option<NaiveDate> {
        match self {
            Step::Day => start.checked_add_days(Days::new(1)),
            Step::Week => start.checked_add_days(Days::new(7)),
            Step::Month => start.checked_add_months(Months::new(1)),
        }
    }

    /// The last day of the step starting at `start`.
    pub fn last_day(self, start: NaiveDate) -> NaiveDate {
        self.next(start).and_then(|n| n.pred_opt()).unwrap_or(start)
    }
}

/// One point of the trend: the step starting on `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub start: NaiveDate,
    pub revenue: Decimal,
    pub sales: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trend {
    pub step: Step,
    /// Every step from the first to the last day shown, those without sales included.
    pub points: Vec<TrendPoint>,
}

impl Trend {
    /// Every step between `first` and `last`, with the figures of `known` (step starts
    /// and their figures, from the rollups) and zeros elsewhere.
    pub fn fill(
        step: Step,
        first: NaiveDate,
        last: NaiveDate,
        known: &[(NaiveDate, Decimal, u64)],
    ) -> Trend {
        let mut points = Vec::new();
        let mut at = Some(step.start_of(first));
        while let Some(start) = at.filter(|s| *s <= last) {
            let (revenue, sales) = known
                .iter()
                .find(|(s, ..)| *s == start)
                .map_or((Decimal::ZERO, 0), |(_, r, n)| (*r, *n));
            points.push(TrendPoint {
                start,
                revenue,
                sales,
            });
            at = step.next(start);
        }
        Trend { step, points }
    }
}

/// How a figure moved against the previous period, in the words and direction a KPI
/// shows under its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub text: String,
    /// Up, down or flat: the arrow, and the class that colours it.
    pub direction: std::cmp::Ordering,
}

impl Movement {
    /// A relative change, in percent of the previous value (none from zero).
    pub fn percent(now: Decimal, before: Decimal) -> Option<Movement> {
        if before.is_zero() {
            return None;
        }
        let change = ((now - before) / before * Decimal::from(100)).round_dp(1);
        Some(Movement::of(change, format!("{}%", signed(change))))
    }

    /// An absolute change, for figures that are already rates or scores (`unit` after it).
    pub fn points(now: Decimal, before: Decimal, unit: &str) -> Movement {
        let change = (now - before).round_dp(2);
        Movement::of(change, format!("{}{unit}", signed(change)))
    }

    fn of(change: Decimal, text: String) -> Movement {
        Movement {
            text,
            direction: change.cmp(&Decimal::ZERO),
        }
    }
}

fn signed(d: Decimal) -> String {
    if d.is_sign_positive() && !d.is_zero() {
        format!("+{d}")
    } else if d.is_zero() {
        "±0".into()
    } else {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_previous_period_has_the_same_length_and_ends_the_day_before() {
        let f = AnalyticsFilter {
            from: Some(day("2016-03-01")),
            to: Some(day("2016-03-31")),
            store: Some("Denver".into()),
            method: None,
        };
        let p = f.previous().unwrap();
        assert_eq!(
            (p.from, p.to),
            (Some(day("2016-01-30")), Some(day("2016-02-29")))
        );
        assert_eq!(p.store.as_deref(), Some("Denver"), "same filters");
        let open = AnalyticsFilter { to: None, ..f };
        assert_eq!(open.previous(), None);
    }

    #[test]
    fn the_step_follows_the_range() {
        assert_eq!(
            Step::for_span(day("2016-01-01"), day("2016-03-02")),
            Step::Day
        );
        assert_eq!(
            Step::for_span(day("2016-01-01"), day("2016-03-03")),
            Step::Week
        );
        assert_eq!(
            Step::for_span(day("2016-01-01"), day("2016-12-31")),
            Step::Week
        );
        assert_eq!(
            Step::for_span(day("2016-01-01"), day("2017-01-01")),
            Step::Month
        );
        // 2016-03-02 was a Wednesday.
        assert_eq!(Step::Week.start_of(day("2016-03-02")), day("2016-02-29"));
        assert_eq!(Step::Month.start_of(day("2016-03-02")), day("2016-03-01"));
        assert_eq!(Step::Month.last_day(day("2016-02-01")), day("2016-02-29"));
        assert_eq!(Step::Week.last_day(day("2016-02-29")), day("2016-03-06"));
    }

    #[test]
    fn a_trend_has_every_step_with_zeros_where_nothing_sold() {
        let t = Trend::fill(
            Step::Month,
            day("2016-01-15"),
            day("2016-04-02"),
            &[(day("2016-02-01"), Decimal::from(10), 2)],
        );
        let starts: Vec<String> = t.points.iter().map(|p| p.start.to_string()).collect();
        assert_eq!(
            starts,
            ["2016-01-01", "2016-02-01", "2016-03-01", "2016-04-01"]
        );
        assert_eq!(t.points[1].sales, 2);
        assert_eq!(t.points[2].revenue, Decimal::ZERO);
    }

    #[test]
    fn movements_read_as_a_person_would_say_them() {
        let up = Movement::percent(Decimal::from(150), Decimal::from(120)).unwrap();
        assert_eq!(up.text, "+25.0%");
        assert_eq!(up.direction, std::cmp::Ordering::Greater);
        assert_eq!(Movement::percent(Decimal::from(1), Decimal::ZERO), None);
        let flat = Movement::points(Decimal::new(412, 2), Decimal::new(412, 2), "");
        assert_eq!(
            (flat.text.as_str(), flat.direction),
            ("±0", std::cmp::Ordering::Equal)
        );
        let down = Movement::points(Decimal::new(398, 2), Decimal::new(412, 2), "");
        assert_eq!(down.text, "-0.14");
    }

    #[test]
    fn bad_filters_are_named() {
        let q = AnalyticsQuery {
            method: "Carrier pigeon".into(),
            from: "2016-02-30".into(),
            ..Default::default()
        };
        let fields: Vec<String> = q
            .parse()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["from", "method"]);
    }

    #[test]
    fn a_bar_leads_to_the_sales_table_with_its_filters() {
        let f = AnalyticsFilter {
            from: Some(day("2016-01-01")),
            to: Some(day("2016-12-31")),
            store: None,
            method: Some(PurchaseMethod::InStore),
        };
        assert_eq!(
            f.sales_table_href(None, None, Some("New York"), None),
            "/worker?store=New%20York&method=In%20store&from=2016-01-01&to=2016-12-31"
        );
        assert_eq!(
            f.sales_table_href(Some(day("2016-03-01")), Some(day("2016-03-31")), None, None),
            "/worker?method=In%20store&from=2016-03-01&to=2016-03-31"
        );
    }
}
