//! `POST /api/imports/upload`: a file of sales from the imports page's form
//! (`multipart/form-data`, field `file`), checked and stored as a job.
//!
//! A browser's form post is answered with a redirect (to the job, or back to the page
//! with the error in the URL), so the page works before and without hydration; any
//! other client gets the job as JSON, or the error with its status.

use super::{check, jobs};
use crate::model::AppError;
use crate::model::imports::IMPORT_FILE_LIMIT;
use crate::server::AppState;
use crate::server::auth::{Access, guard, request, sessions::Activity};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

/// The file name as given, without a path and at most 255 characters.
fn clean_name(raw: Option<&str>) -> String {
    let name = raw
        .unwrap_or("sales.json")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect::<String>();
    if name.trim().is_empty() {
        "sales.json".into()
    } else {
        name
    }
}

/// Extended JSON is text: a JSON file, JSON lines, or plain text. Anything a browser
/// labels otherwise (an image, a spreadsheet, a PDF) is the wrong file.
fn is_json_upload(name: &str, content_type: Option<&str>) -> bool {
    let by_type = matches!(
        content_type.map(|t| t.split(';').next().unwrap_or_default().trim()),
        None | Some(
            "" | "application/json"
                | "application/x-ndjson"
                | "application/jsonl"
                | "application/octet-stream"
                | "text/plain"
                | "text/json"
        )
    );
    let lower = name.to_ascii_lowercase();
    let by_name = [".json", ".jsonl", ".ndjson", ".txt"]
        .iter()
        .any(|ext| lower.ends_with(ext));
    by_type && by_name
}

async fn receive(state: &AppState, request: Request) -> Result<u64, AppError> {
    let (parts, body) = request.into_parts();
    let info = request::from_parts(&parts, state.auth.cookie_secure)?;
    let me = guard::require(state, &info, Access::STAFF, Activity::User).await?;
    let mut form = Multipart::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(|_| AppError::Request("Send the file as a form upload.".into()))?;
    let mut field = loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => break field,
            Ok(Some(_)) => continue,
            Ok(None) => return Err(AppError::invalid("file", "Choose a file to import")),
            Err(_) => return Err(AppError::Request("The upload was cut off.".into())),
        }
    };
    let name = clean_name(field.file_name());
    if !is_json_upload(&name, field.content_type()) {
        return Err(AppError::invalid(
            "file",
            "Upload a .json file of sales in MongoDB Extended JSON, as `server import` reads",
        ));
    }
    let mut content = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if content.len() + chunk.len() > IMPORT_FILE_LIMIT {
                    return Err(AppError::TooLarge);
                }
                content.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err(AppError::Request("The upload was cut off.".into())),
        }
    }
    if std::str::from_utf8(&content).is_err() {
        return Err(AppError::invalid(
            "file",
            "This file is not text: upload sales in MongoDB Extended JSON",
        ));
    }
    let content = Arc::new(content);
    let checked = check::check(&state.mongo, content.clone()).await?;
    jobs::create(&state.mysql, me.user.id, &name, &content, &checked).await
}

/// The error as the imports page shows it after a form post.
fn message(e: &AppError) -> String {
    match e {
        AppError::TooLarge => format!(
            "The file is larger than {} MB: import it with `server import` instead.",
            IMPORT_FILE_LIMIT / (1024 * 1024)
        ),
        AppError::Invalid(fields) => fields
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join(" "),
        e => e.to_string(),
    }
}

pub async fn upload(State(state): State<AppState>, request: Request) -> Response {
    let from_page = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    match (receive(&state, request).await, from_page) {
        (Ok(id), true) => Redirect::to(&format!("/imports/{id}")).into_response(),
        (Ok(id), false) => match jobs::get(&state.mysql, id).await {
            Ok(job) => axum::Json(job).into_response(),
            Err(e) => crate::server::error_response(e),
        },
        (Err(AppError::Unauthorized), true) => Redirect::to("/login?next=/imports").into_response(),
        (Err(e), true) => Redirect::to(&format!(
            "/imports?error={}",
            crate::model::url::query_value(&message(&e))
        ))
        .into_response(),
        (Err(e), false) => crate::server::error_response(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_text_files_are_taken() {
        assert!(is_json_upload("sales.json", Some("application/json")));
        assert!(is_json_upload(
            "Sales.JSONL",
            Some("application/octet-stream")
        ));
        assert!(is_json_upload("export.ndjson", None));
        assert!(!is_json_upload("photo.png", Some("image/png")));
        assert!(!is_json_upload(
            "sales.xlsx",
            Some("application/vnd.ms-excel")
        ));
        assert!(!is_json_upload("sales.json", Some("image/png")));
    }

    #[test]
    fn file_names_lose_their_path() {
        assert_eq!(clean_name(Some("C:\\Users\\ann\\sales.json")), "sales.json");
        assert_eq!(clean_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_name(None), "sales.json");
        assert_eq!(clean_name(Some("  ")), "sales.json");
    }
}
