//! Reading rows into store types, and SQLite errors into [`StoreError`]. Every value
//! read is checked: a malformed row is [`StoreError::Corrupt`], never a panic.

use doran_protocol::{BlobHash, ChunkId, DocId};
use rusqlite::{ErrorCode, Row};

use crate::store::{BlobOwner, BlobRecord, OutboxEntry, Result, StoreError};

impl From<doran_sqlite::Error> for StoreError {
    fn from(err: doran_sqlite::Error) -> Self {
        match err {
            doran_sqlite::Error::Sqlite(e) => e.into(),
            doran_sqlite::Error::NewerSchema { found, supported } => {
                StoreError::NewerSchema { found, supported }
            }
            doran_sqlite::Error::Corrupt(what) => StoreError::Corrupt(what),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match &err {
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(e.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
            {
                StoreError::Corrupt(err.to_string())
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(err.to_string()),
            _ => StoreError::Backend(Box::new(err)),
        }
    }
}

/// An id of `N` bytes.
pub(super) fn fixed<const N: usize>(row: &Row<'_>, idx: usize, kind: &str) -> Result<[u8; N]> {
    let bytes: Vec<u8> = row.get(idx)?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt(format!("{kind} of {} bytes", bytes.len())))
}

/// A non-negative integer.
pub(super) fn unsigned(row: &Row<'_>, idx: usize, what: &str) -> Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what} {value}")))
}

/// A row of [`outbox_columns!`].
pub(super) fn outbox_entry(row: &Row<'_>) -> Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: unsigned(row, 0, "outbox id")?,
        doc: DocId(fixed(row, 1, "doc id")?),
        chunk: ChunkId(fixed(row, 2, "chunk id")?),
        bytes: row.get(3)?,
        created_at_ms: row.get(4)?,
    })
}

/// The columns [`outbox_entry`] reads, in order.
macro_rules! outbox_columns {
    () => {
        "id, doc_id, chunk_id, bytes, created_at_ms"
    };
}
pub(super) use outbox_columns;

/// A row of [`blob_columns!`].
pub(super) fn blob_record(row: &Row<'_>) -> Result<BlobRecord> {
    let state: String = row.get(3)?;
    Ok(BlobRecord {
        hash: BlobHash(fixed(row, 0, "blob hash")?),
        size: unsigned(row, 1, "blob size")?,
        mime: row.get(2)?,
        state: state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
        cached: row.get(4)?,
        last_used_ms: row.get(5)?,
        owner: row
            .get::<_, Option<String>>(6)?
            .map(|o| {
                BlobOwner::from_text(&o)
                    .ok_or_else(|| StoreError::Corrupt(format!("blob owner {o:?}")))
            })
            .transpose()?,
        key: row
            .get::<_, Option<Vec<u8>>>(7)?
            .map(|k| {
                crate::seal::BlobKey::from_slice(&k)
                    .ok_or_else(|| StoreError::Corrupt("a blob key that is not 32 bytes".into()))
            })
            .transpose()?,
    })
}

/// The columns [`blob_record`] reads, in order.
macro_rules! blob_columns {
    () => {
        "hash, size, mime, state, cached, last_used_ms, owner, seal_key"
    };
}
pub(super) use blob_columns;

/// Collects every row of a prepared query through `map`.
pub(super) fn collect<T>(
    mut rows: rusqlite::Rows<'_>,
    map: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}
