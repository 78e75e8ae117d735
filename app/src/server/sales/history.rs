//! A sale's history, read from the intent journal: every change that reached both
//! stores (edits, imports, reconciliation repairs) and every restore recovery made,
//! with who made it and what it changed.

use super::dual_write::{ActorKind, IntentState, Op};
use crate::model::history::diff;
use crate::model::{Actor, AppError, HistoryEntry, HistoryOp, Sale, SaleHistory, SaleId};
use crate::server::db::Context;
use chrono::NaiveDateTime;
use sqlx::MySqlPool;

#[derive(sqlx::FromRow)]
struct JournalRow {
    op: Op,
    state: IntentState,
    actor_kind: Option<ActorKind>,
    actor_name: Option<String>,
    before_image: Option<String>,
    after_image: Option<String>,
    result_image: Option<String>,
    updated_at: NaiveDateTime,
}

fn parse(image: Option<&str>) -> Option<Sale> {
    image.and_then(|text| match serde_json::from_str(text) {
        Ok(sale) => Some(sale),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable sale image in the journal");
            None
        }
    })
}

fn actor(kind: Option<ActorKind>, name: Option<String>) -> Actor {
    match (kind, name) {
        (Some(ActorKind::User), Some(name)) => Actor::User(name),
        (Some(ActorKind::Import), _) => Actor::Import,
        (Some(ActorKind::Sync), _) => Actor::Sync,
        (Some(ActorKind::System), _) => Actor::System,
        (Some(ActorKind::User), None) | (None, _) => Actor::Unknown,
    }
}

/// One journal row as a history entry, or `None` when it changed nothing visible.
fn entry(row: JournalRow) -> Option<HistoryEntry> {
    let before = parse(row.before_image.as_deref());
    let after = parse(row.after_image.as_deref());
    let at = row.updated_at.and_utc();
    let who = actor(row.actor_kind, row.actor_name);
    if row.state == IntentState::Failed {
        // Recovery (or the writer itself) undid an edit that did not complete; a restore
        // writes the earlier content under a new version number.
        let result = parse(row.result_image.as_deref())?;
        if before.as_ref().is_some_and(|b| b.version == result.version) {
            return None;
        }
        return Some(HistoryEntry {
            at,
            op: HistoryOp::RolledBack,
            actor: Actor::System,
            version: Some(result.version),
            changes: diff(before.as_ref(), Some(&result)),
        });
    }
    let op = match (row.op, &who) {
        (Op::Create, Actor::Import) => HistoryOp::Imported,
        (Op::Create, _) => HistoryOp::Created,
        (Op::Update, _) => HistoryOp::Updated,
        (Op::Delete, _) => HistoryOp::Deleted,
        (Op::Repair, _) => HistoryOp::Repaired,
    };
    Some(HistoryEntry {
        at,
        op,
        actor: who,
        version: after.as_ref().map(|s| s.version),
        changes: diff(before.as_ref(), after.as_ref()),
    })
}

#[tracing::instrument(skip(pool))]
pub async fn load(pool: &MySqlPool, id: &SaleId) -> Result<SaleHistory, AppError> {
    let rows: Vec<JournalRow> = sqlx::query_as(
        "SELECT i.op, i.state, i.actor_kind, u.username AS actor_name, i.before_image, i.after_image, \
         i.result_image, i.updated_at \
         FROM sale_intents i LEFT JOIN users u ON u.id = i.actor_id \
         WHERE i.sale_id = ? AND (i.state = 'done' OR (i.state = 'failed' AND i.result_image IS NOT NULL)) \
         ORDER BY i.id",
    )
    .bind(id.as_str())
    .fetch_all(pool)
    .await
    .reporting("load sale history")?;
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM sales WHERE id = ?")
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .reporting("load sale history")?;
    if rows.is_empty() && exists.is_none() {
        return Err(AppError::NotFound);
    }
    Ok(SaleHistory {
        id: id.clone(),
        deleted: exists.is_none(),
        entries: rows.into_iter().filter_map(entry).collect(),
    })
}
