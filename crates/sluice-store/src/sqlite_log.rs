//! The request log in SQLite: batched inserts, pruning in bounded chunks (so a prune never
//! holds the database for long), and the grouped sums behind `sluice usage`.

use rusqlite::{Connection, Transaction, params};

use crate::error::StoreError;
use crate::model::StoreId;
use crate::request_log::{RequestLogRow, UsageKey, UsageQuery, UsageRow};

pub(crate) fn insert(
    transaction: &Transaction<'_>,
    rows: &[RequestLogRow],
) -> Result<(), StoreError> {
    let mut statement = transaction.prepare_cached(
        "INSERT INTO request_log (at_ms, provider, account_id, account, client, conversation,
            model, method, path, status, attempts, failovers, latency_ms, ttfb_ms,
            input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19)",
    )?;
    for row in rows {
        let failovers = (!row.failovers.is_empty()).then(|| row.failovers.join(","));
        statement.execute(params![
            row.at_ms,
            row.provider,
            row.account_id.map(|id| id.0),
            row.account,
            row.client,
            // SQLite integers are signed; the hash's bits are kept as they are.
            row.conversation.map(|c| c as i64),
            row.model,
            row.method,
            row.path,
            row.status,
            row.attempts,
            failovers,
            row.latency_ms,
            row.ttfb_ms,
            saturating_i64(row.input_tokens),
            saturating_i64(row.output_tokens),
            saturating_i64(row.cache_creation_tokens),
            saturating_i64(row.cache_read_tokens),
            row.error,
        ])?;
    }
    Ok(())
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Delete up to `limit` rows older than `before_ms`; returns how many went.
pub(crate) fn prune(
    transaction: &Transaction<'_>,
    before_ms: i64,
    limit: u32,
) -> Result<u64, StoreError> {
    let deleted = transaction.execute(
        "DELETE FROM request_log WHERE id IN
            (SELECT id FROM request_log WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
        params![before_ms, limit],
    )?;
    Ok(deleted as u64)
}

/// The newest rows first, at most `limit`.
pub(crate) fn recent(
    connection: &Connection,
    limit: u32,
) -> Result<Vec<RequestLogRow>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT r.at_ms, r.provider, r.account_id, COALESCE(a.name, r.account), r.client,
            r.conversation, r.model, r.method, r.path, r.status, r.attempts, r.failovers,
            r.latency_ms, r.ttfb_ms, r.input_tokens, r.output_tokens, r.cache_creation_tokens,
            r.cache_read_tokens, r.error
         FROM request_log r LEFT JOIN accounts a ON a.id = r.account_id
         ORDER BY r.at_ms DESC, r.id DESC LIMIT ?1",
    )?;
    let rows = statement.query_map([limit], |row| {
        let failovers: Option<String> = row.get(11)?;
        Ok(RequestLogRow {
            at_ms: row.get(0)?,
            provider: row.get(1)?,
            account_id: row.get::<_, Option<i64>>(2)?.map(StoreId),
            account: row.get(3)?,
            client: row.get(4)?,
            conversation: row.get::<_, Option<i64>>(5)?.map(|c| c as u64),
            model: row.get(6)?,
            method: row.get(7)?,
            path: row.get(8)?,
            status: row.get(9)?,
            attempts: row.get(10)?,
            failovers: failovers
                .map(|f| f.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            latency_ms: row.get(12)?,
            ttfb_ms: row.get(13)?,
            input_tokens: unsigned(row.get(14)?),
            output_tokens: unsigned(row.get(15)?),
            cache_creation_tokens: unsigned(row.get(16)?),
            cache_read_tokens: unsigned(row.get(17)?),
            error: row.get(18)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn usage(
    connection: &Connection,
    query: &UsageQuery,
) -> Result<Vec<UsageRow>, StoreError> {
    // Account names follow the account's row across renames; rows of accounts that are gone
    // (or never had a row) keep the name they were logged under.
    let key = match query.by {
        UsageKey::Total => "NULL",
        UsageKey::Account => "COALESCE(a.name, r.account)",
        UsageKey::Provider => "r.provider",
        UsageKey::Model => "r.model",
        UsageKey::Client => "r.client",
    };
    let bucket = match query.bucket_ms {
        Some(_) => "(r.at_ms / ?3) * ?3",
        None => "NULL",
    };
    let sql = format!(
        "SELECT {bucket} AS bucket, {key} AS key, r.model, COUNT(*),
            SUM(r.error IS NOT NULL), SUM(r.input_tokens), SUM(r.output_tokens),
            SUM(r.cache_creation_tokens), SUM(r.cache_read_tokens), SUM(r.latency_ms)
         FROM request_log r LEFT JOIN accounts a ON a.id = r.account_id
         WHERE r.at_ms >= ?1 AND r.at_ms < ?2
         GROUP BY bucket, key, r.model
         ORDER BY bucket, key, r.model"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let until = query.until_ms.unwrap_or(i64::MAX);
    let read = |row: &rusqlite::Row<'_>| {
        Ok(UsageRow {
            bucket_ms: row.get(0)?,
            key: row.get(1)?,
            model: row.get(2)?,
            requests: unsigned(row.get(3)?),
            failed: unsigned(row.get(4)?),
            input_tokens: unsigned(row.get(5)?),
            output_tokens: unsigned(row.get(6)?),
            cache_creation_tokens: unsigned(row.get(7)?),
            cache_read_tokens: unsigned(row.get(8)?),
            latency_ms_sum: row.get(9)?,
        })
    };
    let rows = match query.bucket_ms {
        Some(bucket) => statement.query_map(params![query.since_ms, until, bucket.max(1)], read)?,
        None => statement.query_map(params![query.since_ms, until], read)?,
    };
    Ok(rows.collect::<Result<_, _>>()?)
}
