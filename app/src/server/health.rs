use super::AppState;
use crate::model::{HealthReport, StoreHealth};
use std::time::{Duration, Instant};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe<F, E>(fut: F) -> StoreHealth
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, fut).await;
    let rtt_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    };
    if let Some(error) = &error {
        tracing::warn!(%error, "health probe failed");
    }
    StoreHealth {
        up: error.is_none(),
        rtt_ms,
        // The reason stays in the log: the report is public.
        error: error.map(|_| "unreachable".to_string()),
    }
}

#[tracing::instrument(skip_all)]
pub async fn check(state: &AppState) -> HealthReport {
    let mysql = probe(async {
        sqlx::query("SELECT 1")
            .execute(&state.health_mysql)
            .await
            .map(|_| ())
    });
    let mongodb = probe(async {
        state
            .mongo
            .run_command(bson::doc! { "ping": 1 })
            .await
            .map(|_| ())
    });
    let (mysql, mongodb) = tokio::join!(mysql, mongodb);
    let intents = if mysql.up {
        tokio::time::timeout(
            PROBE_TIMEOUT,
            super::sales::dual_write::intent_counts(&state.health_mysql),
        )
        .await
        .ok()
        .and_then(Result::ok)
    } else {
        None
    };
    let all_up = mysql.up && mongodb.up;
    HealthReport {
        status: if all_up { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        mysql,
        mongodb,
        intents,
        checked_at: chrono::Utc::now(),
    }
}
