//! Sales for the dashboards: a customer's purchases, the staff's sales table and edit
//! forms (every edit through the dual writer), and the management analytics.

#[cfg(feature = "ssr")]
use crate::model::analytics::AnalyticsQuery;
use crate::model::report::{Analytics, MatchCount, Purchases, SaleForEdit, SalesPage, SalesQuery};
use crate::model::{AppError, Sale, SaleHistory, SaleInput};
#[cfg(feature = "ssr")]
use crate::server::{
    Call,
    auth::{Access, CurrentUser, sessions::Activity},
    respond, respond_as,
    sales::{
        analytics,
        dual_write::{Author, IdempotencyKey, Writer},
        history, list, queries,
    },
};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
fn parse_id(raw: &str) -> Result<crate::model::SaleId, AppError> {
    crate::model::SaleId::parse(raw).map_err(|_| AppError::NotFound)
}

/// A submission token: empty means none (the edit is then not deduplicated).
#[cfg(feature = "ssr")]
fn parse_token(raw: &str) -> Result<Option<IdempotencyKey>, AppError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    IdempotencyKey::parse(raw)
        .map(Some)
        .map_err(|m| AppError::invalid("token", m))
}

/// The dual writer, journaling its changes as the signed-in user's.
#[cfg(feature = "ssr")]
fn writer_for(call: &Call, current: &CurrentUser) -> Writer {
    call.state.writer.by(Author::User(current.user.id))
}

#[cfg(feature = "ssr")]
fn new_token() -> String {
    crate::server::auth::tokens::random_hex(16)
}

/// The signed-in customer's purchases. There is no email parameter: the session's
/// account decides whose sales these are.
#[server(prefix = "/api", endpoint = "sales/mine")]
pub async fn my_purchases(
    page: Option<u32>,
    background: Option<bool>,
) -> Result<Purchases, AppError> {
    respond_as(
        Activity::of(background),
        Access::CUSTOMER,
        |call, me| async move {
            // Sales are matched by address: only a proven one may see them.
            if !me.user.email_verified {
                return Err(AppError::EmailUnverified);
            }
            let page = page.unwrap_or(1).clamp(1, 1_000_000);
            queries::purchases(&call.state.mysql, &me.user.email, page).await
        },
    )
    .await
}

#[server(prefix = "/api", endpoint = "sales/list", input = Json)]
pub async fn list_sales(
    query: SalesQuery,
    background: Option<bool>,
) -> Result<SalesPage, AppError> {
    respond_as(
        Activity::of(background),
        Access::STAFF,
        |call, _| async move {
            let filter = query.parse().map_err(AppError::Invalid)?;
            list::list(&call.state.mysql, &call.state.counts, &filter).await
        },
    )
    .await
}

/// How many sales match the filters: the table's count, when sales change elsewhere
/// (the page asks by itself, so it is not the user's activity).
#[server(prefix = "/api", endpoint = "sales/count", input = Json)]
pub async fn count_sales(query: SalesQuery) -> Result<MatchCount, AppError> {
    respond_as(Activity::Background, Access::STAFF, |call, _| async move {
        let filter = query.parse().map_err(AppError::Invalid)?;
        list::matching(&call.state.mysql, &call.state.counts, &filter).await
    })
    .await
}

/// A sale as MongoDB (the truth) holds it, with a fresh token for the edit form.
#[server(prefix = "/api", endpoint = "sales/get")]
pub async fn load_sale(id: String) -> Result<SaleForEdit, AppError> {
    respond(Access::STAFF, |call, _| async move {
        let id = parse_id(&id)?;
        // Read before the sale: a change saved after it reaches the open form live.
        let feed = crate::server::sales::changes::generation(&call.state.mysql).await?;
        let sale = call
            .state
            .writer
            .current(&id)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok(SaleForEdit {
            sale,
            token: new_token(),
            feed,
        })
    })
    .await
}

/// Every version of a sale, who made it and what changed. A deleted sale's history is
/// for senior managers only.
#[server(prefix = "/api", endpoint = "sales/history")]
pub async fn load_sale_history(id: String) -> Result<SaleHistory, AppError> {
    respond(Access::STAFF, |call, current| async move {
        let id = parse_id(&id)?;
        let history = history::load(&call.state.mysql, &id).await?;
        if history.deleted {
            crate::server::auth::guard::authorize(&current.user, Access::MANAGEMENT)?;
        }
        Ok(history)
    })
    .await
}

/// A fresh submission token for the "new sale" form.
#[server(prefix = "/api", endpoint = "sales/token")]
pub async fn sale_token() -> Result<String, AppError> {
    respond(Access::STAFF, |_, _| async move { Ok(new_token()) }).await
}

#[server(prefix = "/api", endpoint = "sales/create", input = Json)]
pub async fn create_sale(token: String, input: SaleInput) -> Result<Sale, AppError> {
    respond(Access::STAFF, |call, current| async move {
        let key = parse_token(&token)?;
        let draft = input
            .parse_at(chrono::Utc::now())
            .map_err(AppError::Invalid)?;
        writer_for(&call, &current)
            .create(key.as_ref(), draft)
            .await
    })
    .await
}

#[server(prefix = "/api", endpoint = "sales/update", input = Json)]
pub async fn update_sale(
    token: String,
    id: String,
    version: u64,
    input: SaleInput,
) -> Result<Sale, AppError> {
    respond(Access::STAFF, |call, current| async move {
        let key = parse_token(&token)?;
        let id = parse_id(&id)?;
        let draft = input
            .parse_at(chrono::Utc::now())
            .map_err(AppError::Invalid)?;
        writer_for(&call, &current)
            .update(key.as_ref(), &id, version, draft)
            .await
    })
    .await
}

#[server(prefix = "/api", endpoint = "sales/delete")]
pub async fn delete_sale(token: String, id: String, version: u64) -> Result<(), AppError> {
    respond(Access::STAFF, |call, current| async move {
        let key = parse_token(&token)?;
        let id = parse_id(&id)?;
        writer_for(&call, &current)
            .delete(key.as_ref(), &id, version)
            .await
    })
    .await
}

/// The management analytics over an inclusive date range (`YYYY-MM-DD`, either empty),
/// for one store and one purchase method when given.
#[server(prefix = "/api", endpoint = "analytics")]
pub async fn load_analytics(
    from: String,
    to: String,
    store: Option<String>,
    method: Option<String>,
    background: Option<bool>,
) -> Result<Analytics, AppError> {
    respond_as(
        Activity::of(background),
        Access::MANAGEMENT,
        |call, _| async move {
            let query = AnalyticsQuery {
                from,
                to,
                store: store.unwrap_or_default(),
                method: method.unwrap_or_default(),
            };
            let filter = query.parse().map_err(AppError::Invalid)?;
            analytics::analytics(&call.state.mysql, &filter).await
        },
    )
    .await
}
