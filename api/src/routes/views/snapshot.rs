//! One read-only snapshot for the several tables of a view.

/// Runs `$body` (sqlx statements on `&mut *$tx`, `?` on their errors) in one read-only
/// snapshot of the store's database, so the several tables of one view are read as of
/// one commit of its runner: PostgreSQL `REPEATABLE READ`, SQLite a read transaction
/// (WAL readers keep the snapshot of their first read). Answers `Result<_, sqlx::Error>`.
macro_rules! in_snapshot {
    ($state:expr, $tx:ident => $body:expr) => {
        match $state.store.db_read() {
            infra::store::Db::Postgres(pool) => {
                async {
                    let mut $tx = pool.begin().await?;
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                        .execute(&mut *$tx)
                        .await?;
                    let out = $body;
                    $tx.rollback().await?;
                    Ok::<_, sqlx::Error>(out)
                }
                .await
            }
            infra::store::Db::Sqlite(pool) => {
                async {
                    let mut $tx = pool.begin().await?;
                    let out = $body;
                    $tx.rollback().await?;
                    Ok::<_, sqlx::Error>(out)
                }
                .await
            }
        }
    };
}
pub(crate) use in_snapshot;
