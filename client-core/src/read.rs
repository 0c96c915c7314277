//! Reading entities out of an Automerge document into the model types, fast.
//!
//! Automerge hydrates a whole subtree in one ordered pass over its operations
//! (`ReadDoc::hydrate`); reading the same entity field by field with `get` seeks in the
//! operation columns once per field and was an order of magnitude slower on a large
//! family. So entities are hydrated natively, turned into a `serde_json::Value`, and
//! deserialised into the model types with serde. Writing still goes through
//! `autosurgeon`, whose encoding (unit enums as strings, `None` as null, bytes as
//! bytes) this reader mirrors.

use automerge::{AutoCommit, ObjId, ReadDoc, ScalarValue, hydrate};
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value as Json};

use crate::error::{DocError, Result};

/// Reads the object `obj` as a `T`.
pub fn entity<T: DeserializeOwned>(doc: &AutoCommit, obj: &ObjId) -> Result<T> {
    let value = doc.hydrate(obj, None)?;
    from_hydrated(&value)
}

/// Converts a hydrated Automerge value to a `T`.
pub fn from_hydrated<T: DeserializeOwned>(value: &hydrate::Value) -> Result<T> {
    serde_json::from_value(to_json(value)).map_err(|e| DocError::Schema(e.to_string()))
}

/// The JSON shape of a hydrated value: maps → objects, lists → arrays, text → string,
/// bytes → an array of numbers (what serde expects for `Vec<u8>`), counters and
/// timestamps → numbers, values of unknown type → null.
pub fn to_json(value: &hydrate::Value) -> Json {
    match value {
        hydrate::Value::Scalar(s) => scalar(s),
        hydrate::Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_json(&v.value)))
                .collect::<Map<String, Json>>(),
        ),
        hydrate::Value::List(l) => Json::Array(l.iter().map(|v| to_json(&v.value)).collect()),
        hydrate::Value::Text(t) => Json::String(t.to_string()),
    }
}

fn scalar(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Json::Number((*i).into()),
        ScalarValue::Uint(u) => Json::Number((*u).into()),
        ScalarValue::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValue::Counter(c) => Json::Number(i64::from(c).into()),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Bytes(b) => Json::Array(b.iter().map(|x| Json::Number((*x).into())).collect()),
        ScalarValue::Null | ScalarValue::Unknown { .. } => Json::Null,
    }
}
