//! Shared breaker state on PostgreSQL: the time arithmetic of the shared statements
//! (`store::breaker_state`) on the server's clock, every change announced with `pg_notify`
//! in its own transaction, and the change feed other instances' announcements arrive on
//! (`LISTEN`, reconnecting with backoff).

use std::time::Duration;

use super::PostgresStore;
use crate::store::breaker_state::{BreakerDialect, ChangeNote, TimeSql, CHANNEL};
use crate::store::shared::SqlBackend;

impl BreakerDialect for PostgresStore {
    const TIME: TimeSql = TimeSql {
        now: "now()",
        plus_ms: |ms| format!("now() + {ms} * interval '1 millisecond'"),
        ms_until: |at| format!("(EXTRACT(EPOCH FROM ({at} - now())) * 1000)::bigint"),
        contains: |text, part| format!("strpos({text}, {part}) > 0"),
    };

    async fn announce(
        tx: &mut crate::store::pool::Tx<'_, sqlx::Postgres>,
        name: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map(|_| ())
    }

    async fn watch(
        &self,
        notes: tokio::sync::mpsc::UnboundedSender<ChangeNote>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(100);
        // One direct connection of its own (`JARVIS_LISTEN_DATABASE_URL`), never the main
        // pool's: a `LISTEN` must stay on one server session, which a transaction-mode pooler
        // does not keep.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.listen_options().clone());
        while !*shutdown.borrow() {
            let listener = async {
                let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = match listener.await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %self.classify(e), "breaker change feed: cannot listen yet");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            if notes.send(ChangeNote::Reconnected).is_err() {
                return;
            }
            loop {
                tokio::select! {
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => {
                            if notes.send(ChangeNote::Changed(n.payload().to_string())).is_err() {
                                return;
                            }
                        }
                        // The connection was lost; the next call reconnects and re-LISTENs.
                        Ok(None) => {
                            if notes.send(ChangeNote::Reconnected).is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    },
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}
