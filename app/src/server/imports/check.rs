//! The check of an uploaded file: what importing it would do, without writing a sale.

use crate::model::imports::{ImportRejection, REJECTIONS_KEPT};
use crate::model::{AppError, SaleId};
use crate::server::sales::import::{Parsed, read_records};
use crate::server::sales::primary;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the file holds and what importing it would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub valid: u64,
    pub new_sales: u64,
    pub present: u64,
    pub rejected: u64,
    pub rejections: Vec<ImportRejection>,
}

/// Every record of `content`, parsed as the importer would (on a blocking thread).
pub async fn parse_all(content: Arc<Vec<u8>>) -> Result<Vec<Parsed>, AppError> {
    let (tx, mut rx) = mpsc::channel(1024);
    let reader = tokio::task::spawn_blocking(move || {
        read_records(std::io::Cursor::new(content.as_slice()), Arc::default(), tx)
    });
    let mut records = Vec::new();
    while let Some(parsed) = rx.recv().await {
        records.push(parsed);
    }
    match reader.await {
        Ok(Ok(())) => Ok(records),
        Ok(Err(e)) => Err(AppError::Request(format!(
            "The file is not MongoDB Extended JSON: {e}"
        ))),
        Err(e) => {
            tracing::error!(error = %e, "import check task failed");
            Err(AppError::Internal)
        }
    }
}

/// Parses the file and asks MongoDB (the truth) which of its sales exist already.
#[tracing::instrument(skip_all, fields(bytes = content.len()))]
pub async fn check(mongo: &mongodb::Database, content: Arc<Vec<u8>>) -> Result<Checked, AppError> {
    let records = parse_all(content).await?;
    if records.is_empty() {
        return Err(AppError::Request("The file holds no sales.".into()));
    }
    let mut checked = Checked::default();
    let mut ids: Vec<SaleId> = Vec::new();
    let mut seen = HashSet::new();
    for parsed in records {
        match parsed.result {
            Ok(sale) => {
                checked.valid += 1;
                // A file may name one sale twice: the second is "already present".
                if seen.insert(sale.id.clone()) {
                    ids.push(sale.id);
                }
            }
            Err(reason) => {
                checked.rejected += 1;
                if checked.rejections.len() < REJECTIONS_KEPT {
                    checked.rejections.push(ImportRejection {
                        at: parsed.at,
                        reason,
                    });
                }
            }
        }
    }
    let existing = primary::count_existing(mongo, &ids).await?;
    checked.new_sales = ids.len() as u64 - existing;
    checked.present = checked.valid - checked.new_sales;
    Ok(checked)
}
