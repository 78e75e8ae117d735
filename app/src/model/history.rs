//! A sale's history as staff see it: each version, who made it, and what changed,
//! field by field and item by item. Built on the server from the intent journal.

use super::sale::{ItemInput, Sale, SaleDraft, SaleId, SaleInput};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A signed-in user, by username.
    User(String),
    /// `server import` (or the demo seed).
    Import,
    /// A reconciliation run, repairing the backup from MongoDB.
    Sync,
    /// Recovery, settling an edit whose writer died or stalled.
    System,
    /// Journaled before changes were attributed.
    Unknown,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(name) => f.write_str(name),
            Actor::Import => f.write_str("import"),
            Actor::Sync => f.write_str("reconciliation (system)"),
            Actor::System => f.write_str("recovery (system)"),
            Actor::Unknown => f.write_str("unknown"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryOp {
    Created,
    Imported,
    Updated,
    Deleted,
    /// A reconciliation run made the backup match MongoDB.
    Repaired,
    /// Recovery undid an edit that never completed, restoring the earlier content.
    RolledBack,
}

impl HistoryOp {
    pub fn label(self) -> &'static str {
        match self {
            HistoryOp::Created => "created",
            HistoryOp::Imported => "imported",
            HistoryOp::Updated => "edited",
            HistoryOp::Deleted => "deleted",
            HistoryOp::Repaired => "backup repaired",
            HistoryOp::RolledBack => "unfinished edit rolled back",
        }
    }
}

/// One field's change; `None` where the sale (or the item) did not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub op: HistoryOp,
    pub actor: Actor,
    /// The version this change produced; `None` for a deletion.
    pub version: Option<u64>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleHistory {
    pub id: SaleId,
    /// The sale no longer exists.
    pub deleted: bool,
    /// Oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// The fields of a sale as shown, in form order.
fn fields(draft: &SaleDraft) -> [(&'static str, String); 8] {
    let input = SaleInput::from(draft);
    [
        ("Date", super::time::minute_utc(&draft.sale_date)),
        ("Store", input.store_location),
        ("Purchase method", input.purchase_method),
        (
            "Coupon used",
            if input.coupon_used { "yes" } else { "no" }.into(),
        ),
        ("Customer email", input.customer_email),
        ("Customer age", input.customer_age),
        ("Customer gender", input.customer_gender),
        ("Satisfaction", input.customer_satisfaction),
    ]
}

fn item_fields(item: &ItemInput) -> [(&'static str, String); 4] {
    [
        ("name", item.name.clone()),
        ("tags", item.tags.join(", ")),
        ("price", item.price.clone()),
        ("quantity", item.quantity.clone()),
    ]
}

fn item_summary(item: &ItemInput) -> String {
    format!("{} × {} at {}", item.name, item.quantity, item.price)
}

/// What changed from `before` to `after` (either may be absent: a creation lists
/// every field, a deletion every field it removed). Prices stay exact decimals.
pub fn diff(before: Option<&Sale>, after: Option<&Sale>) -> Vec<Change> {
    let mut changes = Vec::new();
    let old = before.map(|s| fields(&s.draft));
    let new = after.map(|s| fields(&s.draft));
    for i in 0..8 {
        let b = old.as_ref().map(|f| &f[i]);
        let a = new.as_ref().map(|f| &f[i]);
        let Some(field) = b.or(a).map(|(name, _)| *name) else {
            continue;
        };
        let (b, a) = (b.map(|f| f.1.clone()), a.map(|f| f.1.clone()));
        if b != a {
            changes.push(Change {
                field: field.into(),
                before: b,
                after: a,
            });
        }
    }
    let items = |s: Option<&Sale>| -> Vec<ItemInput> {
        s.map(|s| SaleInput::from(&s.draft).items)
            .unwrap_or_default()
    };
    let (old, new) = (items(before), items(after));
    for i in 0..old.len().max(new.len()) {
        let label = format!("Item {}", i + 1);
        match (old.get(i), new.get(i)) {
            (Some(b), Some(a)) => {
                for ((name, bv), (_, av)) in item_fields(b).into_iter().zip(item_fields(a)) {
                    if bv != av {
                        changes.push(Change {
                            field: format!("{label} {name}"),
                            before: Some(bv),
                            after: Some(av),
                        });
                    }
                }
            }
            (b, a) => changes.push(Change {
                field: label,
                before: b.map(item_summary),
                after: a.map(item_summary),
            }),
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sale::{ItemName, Price, Quantity};

    fn sale() -> Sale {
        let input = SaleInput {
            sale_date: "2026-03-04T10:30".into(),
            items: vec![
                ItemInput {
                    name: "pens".into(),
                    tags: vec!["office".into()],
                    price: "0.99".into(),
                    quantity: "10".into(),
                },
                ItemInput {
                    name: "paper".into(),
                    tags: vec![],
                    price: "12.50".into(),
                    quantity: "3".into(),
                },
            ],
            store_location: "Denver".into(),
            customer_gender: "F".into(),
            customer_age: "41".into(),
            customer_email: "ann@example.com".into(),
            customer_satisfaction: "4".into(),
            coupon_used: false,
            purchase_method: "Online".into(),
        };
        Sale {
            id: SaleId::parse("64b7f0000000000000000001").unwrap(),
            version: 1,
            updated_at: Utc::now(),
            draft: input.parse().unwrap(),
        }
    }

    #[test]
    fn an_edit_lists_each_changed_field_and_item_part_with_exact_prices() {
        let before = sale();
        let mut after = before.clone();
        after.version = 2;
        after.draft.coupon_used = true;
        after.draft.items.pop();
        after.draft.items[0].price = Price::parse_str("1.10").unwrap();
        after.draft.items[0].quantity = Quantity::parse(11).unwrap();
        let changes = diff(Some(&before), Some(&after));
        let show: Vec<(&str, Option<&str>, Option<&str>)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.before.as_deref(), c.after.as_deref()))
            .collect();
        assert_eq!(
            show,
            vec![
                ("Coupon used", Some("no"), Some("yes")),
                ("Item 1 price", Some("0.99"), Some("1.10")),
                ("Item 1 quantity", Some("10"), Some("11")),
                ("Item 2", Some("paper × 3 at 12.50"), None),
            ]
        );
    }

    #[test]
    fn creation_and_deletion_list_every_field() {
        let s = sale();
        let created = diff(None, Some(&s));
        assert_eq!(created.len(), 8 + 2);
        assert!(created.iter().all(|c| c.before.is_none()));
        let deleted = diff(Some(&s), None);
        assert!(deleted.iter().all(|c| c.after.is_none()));
        assert_eq!(deleted[9].before.as_deref(), Some("paper × 3 at 12.50"));
        let mut renamed = s.clone();
        renamed.draft.items[0].name = ItemName::parse("pencils").unwrap();
        assert_eq!(diff(Some(&s), Some(&renamed))[0].field, "Item 1 name");
        assert!(diff(Some(&s), Some(&s)).is_empty());
    }
}
