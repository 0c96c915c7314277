//! The family view cached in the local store, so a family opens instantly.
//!
//! Loading a ten-year family's Automerge document and reading every entity out of it
//! takes far longer than a screen may wait. So every write that changes the document
//! also writes the entities it touched, encoded, as rows of the store's view cache —
//! in the same transaction as the change itself (`LocalStore::commit_local_with_view`,
//! `apply_remote_with_view`). Opening a family reads those rows
//! ([`cached_family`]), which is enough to draw every screen, while the CRDT loads
//! (`FamilyDoc::load_with_view`) for editing and sync.
//!
//! Row keys are `root` for the family's own fields and `{collection}/{id}` for entities.
//! Values are postcard, tagged by [`VIEW_VERSION`]: a cache written by another version
//! is rebuilt from the document instead of being read.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    error::{DocError, Result},
    model::{Family, Hidden},
    replica::Touched,
    store::ViewRow,
};

/// The encoding version of cached rows. Bump it whenever a model type's fields change,
/// or what is read into them (3: entities are read leniently, values clamped; 4: the
/// keys of sealed blobs; 5: the volumes listed and the hide records; 6: hide records by album).
pub const VIEW_VERSION: u32 = 6;

const ROOT_KEY: &str = "root";

/// The family's own fields, cached as one row.
#[derive(Debug, Serialize, Deserialize)]
struct RootRow {
    schema: u64,
    id: String,
    name: String,
    created_at: i64,
    created_by: String,
    /// The "ever done" counters (version 2).
    counts: BTreeMap<String, i64>,
    /// The volumes listed (version 5).
    volumes: BTreeSet<u16>,
    /// The hide records, albums deleted and when (version 6).
    hidden: Hidden,
}

/// The rows to write for what a change touched, read from the refreshed view.
pub fn rows_for(view: &Family, touched: &[Touched]) -> Result<Vec<ViewRow>> {
    touched.iter().map(|t| row_for(view, t)).collect()
}

fn row_for(view: &Family, t: &Touched) -> Result<ViewRow> {
    match t {
        Touched::Root(_) => Ok(ViewRow {
            key: ROOT_KEY.to_owned(),
            bytes: Some(encode(&root_row(view))?),
        }),
        Touched::Entity(collection, key) => {
            let bytes = match collection.as_str() {
                "members" => view.members.get(key).map(encode),
                "calendar" => view.calendar.get(key).map(encode),
                "missions" => view.missions.get(key).map(encode),
                "albums" => view.albums.get(key).map(encode),
                "photos" => view.photos.get(key).map(encode),
                "voice_albums" => view.voice_albums.get(key).map(encode),
                "voices" => view.voices.get(key).map(encode),
                _ => None,
            }
            .transpose()?;
            Ok(ViewRow {
                key: format!("{collection}/{key}"),
                bytes,
            })
        }
    }
}

/// Every row of a view, for rebuilding the cache from a freshly loaded document.
pub fn all_rows(view: &Family) -> Result<Vec<(String, Vec<u8>)>> {
    let mut rows = vec![(ROOT_KEY.to_owned(), encode(&root_row(view))?)];
    collection_rows(&mut rows, "members", &view.members)?;
    collection_rows(&mut rows, "calendar", &view.calendar)?;
    collection_rows(&mut rows, "missions", &view.missions)?;
    collection_rows(&mut rows, "albums", &view.albums)?;
    collection_rows(&mut rows, "photos", &view.photos)?;
    collection_rows(&mut rows, "voice_albums", &view.voice_albums)?;
    collection_rows(&mut rows, "voices", &view.voices)?;
    Ok(rows)
}

/// Rebuilds the view from cached rows. A row that does not decode is an error: the
/// caller then rebuilds the cache from the document.
pub fn decode_family(rows: &[(String, Vec<u8>)]) -> Result<Family> {
    let mut f = Family::default();
    // Each collection's entries gathered first, then built into its map in one pass
    // (the store gives rows in key order, so they come sorted).
    let mut members = Vec::new();
    let mut calendar = Vec::new();
    let mut missions = Vec::new();
    let mut albums = Vec::new();
    let mut photos = Vec::new();
    let mut voice_albums = Vec::new();
    let mut voices = Vec::new();
    for (key, bytes) in rows {
        if key == ROOT_KEY {
            let r: RootRow = decode(bytes)?;
            (f.schema, f.id, f.name, f.created_at, f.created_by, f.counts) =
                (r.schema, r.id, r.name, r.created_at, r.created_by, r.counts);
            (f.volumes, f.hidden) = (r.volumes, r.hidden);
            continue;
        }
        let Some((collection, id)) = key.split_once('/') else {
            return Err(DocError::Schema(format!("bad view row key {key:?}")));
        };
        let id = id.to_owned();
        match collection {
            "members" => members.push((id, decode(bytes)?)),
            "calendar" => calendar.push((id, decode(bytes)?)),
            "missions" => missions.push((id, decode(bytes)?)),
            "albums" => albums.push((id, decode(bytes)?)),
            "photos" => photos.push((id, decode(bytes)?)),
            "voice_albums" => voice_albums.push((id, decode(bytes)?)),
            "voices" => voices.push((id, decode(bytes)?)),
            other => {
                return Err(DocError::Schema(format!(
                    "unknown view collection {other:?}"
                )));
            }
        }
    }
    // A key given twice keeps its last row, as inserting one by one did.
    f.members = members.into_iter().collect();
    f.calendar = calendar.into_iter().collect();
    f.missions = missions.into_iter().collect();
    f.albums = albums.into_iter().collect();
    f.photos = photos.into_iter().collect();
    f.voice_albums = voice_albums.into_iter().collect();
    f.voices = voices.into_iter().collect();
    Ok(f)
}

fn root_row(view: &Family) -> RootRow {
    RootRow {
        schema: view.schema,
        id: view.id.clone(),
        name: view.name.clone(),
        created_at: view.created_at,
        created_by: view.created_by.clone(),
        counts: view.counts.clone(),
        volumes: view.volumes.clone(),
        hidden: view.hidden.clone(),
    }
}

fn collection_rows<T: Serialize>(
    rows: &mut Vec<(String, Vec<u8>)>,
    name: &str,
    map: &BTreeMap<String, T>,
) -> Result<()> {
    for (id, entity) in map {
        rows.push((format!("{name}/{id}"), encode(entity)?));
    }
    Ok(())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| DocError::Schema(format!("encoding a view row: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| DocError::Schema(format!("decoding a view row: {e}")))
}
