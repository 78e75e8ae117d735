//! `server generate`: deterministic synthetic sales with the real dataset's
//! distributions (measured from sample_supplies: stores, methods, the seven items with
//! their tags, price ranges and quantity ranges, 1–10 items per sale, ages 16–75,
//! satisfaction weights, 9.5 % coupons, dates 2013–2017).

use super::codec::{MoneyEncoding, draft_to_document};
use crate::model::*;
use bson::Bson;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng, distributions::WeightedIndex, prelude::Distribution};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

/// (store, number of sales out of 5,000 in the dataset)
const STORES: [(&str, u32); 6] = [
    ("Denver", 1549),
    ("Seattle", 1134),
    ("London", 794),
    ("Austin", 676),
    ("New York", 501),
    ("San Diego", 346),
];
const METHODS: [(PurchaseMethod, u32); 3] = [
    (PurchaseMethod::InStore, 2819),
    (PurchaseMethod::Online, 1585),
    (PurchaseMethod::Phone, 596),
];
/// Satisfaction 1..=5 counts.
const SATISFACTION: [u32; 5] = [388, 394, 818, 1664, 1736];

struct CatalogItem {
    name: &'static str,
    tags: &'static [&'static str],
    /// Price range in cents, inclusive.
    cents: (i64, i64),
    max_quantity: i64,
    /// Line items with this name in the dataset.
    weight: u32,
}

const CATALOG: [CatalogItem; 7] = [
    CatalogItem {
        name: "notepad",
        tags: &["office", "writing", "school"],
        cents: (500, 4000),
        max_quantity: 5,
        weight: 6872,
    },
    CatalogItem {
        name: "binder",
        tags: &["school", "general", "organization"],
        cents: (1000, 3000),
        max_quantity: 10,
        weight: 4676,
    },
    CatalogItem {
        name: "pens",
        tags: &["writing", "office", "school", "stationary"],
        cents: (504, 7998),
        max_quantity: 5,
        weight: 4559,
    },
    CatalogItem {
        name: "envelopes",
        tags: &["stationary", "office", "general"],
        cents: (500, 2500),
        max_quantity: 10,
        weight: 4505,
    },
    CatalogItem {
        name: "backpack",
        tags: &["school", "travel", "kids"],
        cents: (4005, 19998),
        max_quantity: 5,
        weight: 2309,
    },
    CatalogItem {
        name: "laptop",
        tags: &["electronics", "school", "office"],
        cents: (40015, 159949),
        max_quantity: 5,
        weight: 2271,
    },
    CatalogItem {
        name: "printer paper",
        tags: &["office", "stationary"],
        cents: (1003, 4998),
        max_quantity: 10,
        weight: 2246,
    },
];

const SYLLABLES: [&str; 24] = [
    "ka", "ro", "wit", "bu", "ha", "zi", "del", "mo", "nu", "pe", "sa", "tu", "vo", "le", "ri",
    "co", "fa", "gu", "ji", "na", "ot", "ub", "ew", "is",
];
const TLDS: [&str; 12] = [
    "com", "org", "net", "uk", "de", "sv", "uy", "cg", "io", "fr", "es", "jp",
];

fn word(rng: &mut ChaCha8Rng, syllables: std::ops::RangeInclusive<usize>) -> String {
    let n = rng.gen_range(syllables);
    (0..n)
        .map(|_| SYLLABLES[rng.gen_range(0..SYLLABLES.len())])
        .collect()
}

/// An endless, reproducible stream of sales: the same seed gives the same sales.
pub fn sales(seed: u64) -> impl Iterator<Item = SaleDraft> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stores = WeightedIndex::new(STORES.iter().map(|s| s.1)).expect("static weights");
    let methods = WeightedIndex::new(METHODS.iter().map(|m| m.1)).expect("static weights");
    let satisfaction = WeightedIndex::new(SATISFACTION).expect("static weights");
    let catalog = WeightedIndex::new(CATALOG.iter().map(|c| c.weight)).expect("static weights");
    let start = DateTime::parse_from_rfc3339("2013-01-01T00:00:00Z")
        .expect("static date")
        .timestamp_millis();
    let end = DateTime::parse_from_rfc3339("2018-01-01T00:00:00Z")
        .expect("static date")
        .timestamp_millis();
    std::iter::repeat_with(move || {
        let items = (0..rng.gen_range(1..=10))
            .map(|_| {
                let c = &CATALOG[catalog.sample(&mut rng)];
                let cents = rng.gen_range(c.cents.0..=c.cents.1);
                Item {
                    name: ItemName::parse(c.name).expect("catalog names are valid"),
                    tags: c
                        .tags
                        .iter()
                        .map(|t| Tag::parse(t).expect("catalog tags are valid"))
                        .collect(),
                    price: Price::parse(Decimal::new(cents, 2).normalize())
                        .expect("catalog prices are valid"),
                    quantity: Quantity::parse(rng.gen_range(1..=c.max_quantity))
                        .expect("catalog quantities are valid"),
                }
            })
            .collect();
        let email = format!(
            "{}@{}.{}",
            word(&mut rng, 2..=4),
            word(&mut rng, 2..=3),
            TLDS[rng.gen_range(0..TLDS.len())]
        );
        SaleDraft {
            sale_date: DateTime::<Utc>::from_timestamp_millis(rng.gen_range(start..end))
                .expect("in range"),
            items,
            store_location: StoreLocation::parse(STORES[stores.sample(&mut rng)].0)
                .expect("static store"),
            customer: Customer {
                gender: if rng.gen_bool(0.5054) {
                    Gender::Female
                } else {
                    Gender::Male
                },
                age: Age::parse(rng.gen_range(16..=75)).expect("in range"),
                email: Email::parse(&email).expect("generated emails are valid"),
                satisfaction: Satisfaction::parse(satisfaction.sample(&mut rng) as i64 + 1)
                    .expect("in range"),
            },
            coupon_used: rng.gen_bool(0.0954),
            purchase_method: METHODS[methods.sample(&mut rng)].0,
        }
    })
}

/// One sale as a line of relaxed Extended JSON, shaped like the dataset's lines.
pub fn to_extended_json(draft: &SaleDraft) -> String {
    Bson::Document(draft_to_document(draft, MoneyEncoding::Decimal128))
        .into_relaxed_extjson()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sales() {
        let a: Vec<_> = sales(7).take(50).collect();
        let b: Vec<_> = sales(7).take(50).collect();
        let c: Vec<_> = sales(8).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn output_has_the_dataset_shape_and_ranges() {
        let sample: Vec<_> = sales(1).take(5000).collect();
        let items: usize = sample.iter().map(|s| s.items.len()).sum();
        assert!(
            (25_000..30_000).contains(&items),
            "about 5.5 items per sale: {items}"
        );
        assert!(sample.iter().all(|s| (1..=10).contains(&s.items.len())));
        assert!(
            sample
                .iter()
                .all(|s| (16..=75).contains(&s.customer.age.get()))
        );
        let denver = sample
            .iter()
            .filter(|s| s.store_location.as_str() == "Denver")
            .count();
        assert!((1400..1700).contains(&denver), "Denver has ~31 %: {denver}");
        let coupons = sample.iter().filter(|s| s.coupon_used).count();
        assert!((380..580).contains(&coupons), "~9.5 % coupons: {coupons}");
        let laptop_max = sample
            .iter()
            .flat_map(|s| &s.items)
            .filter(|i| i.name.as_str() == "laptop")
            .map(|i| i.price.get())
            .max()
            .unwrap();
        assert!(laptop_max <= Decimal::new(159_949, 2));

        let line = to_extended_json(&sample[0]);
        assert!(
            line.contains("\"$numberDecimal\"") && line.contains("\"$date\""),
            "{line}"
        );
        let back = super::super::import::parse_line(&line, Utc::now()).unwrap();
        assert_eq!(back.draft, sample[0], "generated lines import back exactly");
    }
}
