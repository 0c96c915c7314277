//! SQLite errors into [`StoreError`], and reading rows. Every value read is checked
//! (an id of the wrong length, a negative count): a malformed row is
//! [`StoreError::Corrupt`], never a panic.

use rusqlite::{ErrorCode, Row, Rows, ffi};

use crate::store::{StoreError, StoreResult};

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
            // The methods check uniqueness themselves to answer a precise error; a
            // constraint that still fires means a record with that key exists.
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(
                    e.extended_code,
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict(err.to_string())
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(err.to_string()),
            _ => StoreError::backend(err),
        }
    }
}

/// A non-negative integer (SQLite stores signed ones).
pub(super) fn unsigned(row: &Row<'_>, idx: usize, what: &str) -> StoreResult<u64> {
    to_unsigned(row.get(idx)?, what)
}

/// An optional non-negative integer.
pub(super) fn unsigned_opt(row: &Row<'_>, idx: usize, what: &str) -> StoreResult<Option<u64>> {
    row.get::<_, Option<i64>>(idx)?
        .map(|v| to_unsigned(v, what))
        .transpose()
}

/// A stored integer that must not be negative.
pub(super) fn to_unsigned(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what} {value}")))
}

/// Collects every row of a prepared query through `map`.
pub(super) fn collect<T>(
    mut rows: Rows<'_>,
    map: impl Fn(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// The first row of a prepared query through `map`, if any.
pub(super) fn first<T>(
    mut rows: Rows<'_>,
    map: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    rows.next()?.map(map).transpose()
}
