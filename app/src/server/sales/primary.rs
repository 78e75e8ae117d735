//! The `sales` collection in MongoDB: the primary copy of every sale.

use super::codec::{MoneyEncoding, document_to_sale, object_id, sale_to_document};
use crate::model::{AppError, Sale, SaleId};
use crate::server::db::mongo_error;
use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::{Collection, Database, IndexModel, options::IndexOptions};
use std::collections::HashSet;

pub const COLLECTION: &str = "sales";
const DUPLICATE_KEY: i32 = 11000;

pub fn collection(db: &Database) -> Collection<Document> {
    db.collection(COLLECTION)
}

/// The indexes the UI's lists and filters need. Idempotent.
///
/// One index per command: FerretDB 1.24 drops the connection when a multi-index
/// `createIndexes` names indexes that already exist.
#[tracing::instrument(skip_all)]
pub async fn ensure_indexes(db: &Database) -> Result<(), AppError> {
    let indexes = [
        (doc! { "saleDate": -1 }, "saleDate"),
        (
            doc! { "storeLocation": 1, "saleDate": -1 },
            "storeLocation_saleDate",
        ),
        (
            doc! { "customer.email": 1, "saleDate": -1 },
            "customerEmail_saleDate",
        ),
    ];
    for (keys, name) in indexes {
        let model = IndexModel::builder()
            .keys(keys)
            .options(IndexOptions::builder().name(name.to_string()).build())
            .build();
        collection(db)
            .create_index(model)
            .await
            .map_err(|e| mongo_error("create sales index", e))?;
    }
    Ok(())
}

/// What this MongoDB deployment can do, asked once per process (`buildInfo` names
/// FerretDB), since a process talks to one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    pub money: MoneyEncoding,
    /// MongoDB applies a filtered write atomically and finds `{_id, version}` through
    /// the `_id` index, so the version condition belongs in the filter. FerretDB 1.x
    /// does neither: any filter beyond `_id` alone is evaluated in Go over a full
    /// collection scan (1 s at 5,000 sales, 9 s at 44,000, measured), and its updates
    /// are read-modify-write anyway. There the writer's per-sale lock and its version
    /// check under that lock are the guarantee, and writes filter by `_id` alone.
    pub version_in_filter: bool,
}

pub async fn flavor(db: &Database) -> Result<Flavor, AppError> {
    static DETECTED: tokio::sync::OnceCell<Flavor> = tokio::sync::OnceCell::const_new();
    DETECTED
        .get_or_try_init(|| async {
            let info = db
                .run_command(doc! { "buildInfo": 1 })
                .await
                .map_err(|e| mongo_error("buildInfo", e))?;
            let ferretdb = info.contains_key("ferretdbVersion");
            let flavor = Flavor {
                money: if ferretdb {
                    MoneyEncoding::Text
                } else {
                    MoneyEncoding::Decimal128
                },
                version_in_filter: !ferretdb,
            };
            tracing::info!(?flavor, "MongoDB deployment detected");
            Ok(flavor)
        })
        .await
        .copied()
}

pub async fn money_encoding(db: &Database) -> Result<MoneyEncoding, AppError> {
    Ok(flavor(db).await?.money)
}

/// Inserts new sales; those whose id already exists are left alone and returned as
/// skipped. Unordered, so one duplicate does not stop the rest.
#[tracing::instrument(skip_all, fields(n = sales.len()))]
pub async fn insert_new(db: &Database, sales: &[Sale]) -> Result<HashSet<SaleId>, AppError> {
    if sales.is_empty() {
        return Ok(HashSet::new());
    }
    let encoding = money_encoding(db).await?;
    let docs: Vec<Document> = sales
        .iter()
        .map(|s| sale_to_document(s, encoding))
        .collect();
    match collection(db).insert_many(docs).ordered(false).await {
        Ok(_) => Ok(HashSet::new()),
        Err(e) => {
            let mongodb::error::ErrorKind::InsertMany(failure) = e.kind.as_ref() else {
                return Err(mongo_error("insert sales", e));
            };
            let errors = failure.write_errors.as_deref().unwrap_or_default();
            if failure.write_concern_error.is_some()
                || errors.iter().any(|w| w.code != DUPLICATE_KEY)
            {
                return Err(mongo_error("insert sales", e));
            }
            Ok(errors
                .iter()
                .filter_map(|w| sales.get(w.index))
                .map(|s| s.id.clone())
                .collect())
        }
    }
}

/// Looks the sales up one `_id` at a time, a few in flight: FerretDB answers `_id`
/// equality from its SQL index but evaluates `$in` by scanning the whole collection.
pub async fn find_by_ids(db: &Database, ids: &[SaleId]) -> Result<Vec<Sale>, AppError> {
    use futures::StreamExt;
    let collection = collection(db);
    let oids: Vec<bson::oid::ObjectId> = ids.iter().map(object_id).collect();
    let found: Vec<Option<Document>> = futures::stream::iter(oids)
        .map(move |oid| {
            let collection = collection.clone();
            async move { collection.find_one(doc! { "_id": oid }).await }
        })
        .buffered(8)
        .try_collect()
        .await
        .map_err(|e| mongo_error("find sales", e))?;
    found.iter().flatten().map(decode).collect()
}

pub fn decode(document: &Document) -> Result<Sale, AppError> {
    document_to_sale(document).map_err(|e| {
        tracing::error!(error = %e, "invalid sale document in MongoDB");
        AppError::Internal
    })
}

pub async fn delete_ids(db: &Database, ids: &[SaleId]) -> Result<u64, AppError> {
    let oids: Vec<_> = ids.iter().map(object_id).collect();
    let done = collection(db)
        .delete_many(doc! { "_id": { "$in": oids } })
        .await
        .map_err(|e| mongo_error("delete sales", e))?;
    Ok(done.deleted_count)
}

pub async fn is_empty(db: &Database) -> Result<bool, AppError> {
    let first = collection(db)
        .find_one(doc! {})
        .projection(doc! { "_id": 1 })
        .await
        .map_err(|e| mongo_error("probe sales", e))?;
    Ok(first.is_none())
}
