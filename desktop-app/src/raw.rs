//! Commands that carry a file's bytes (a photo, a recording, a profile photo): the
//! bytes travel as the raw IPC body (no JSON array of numbers), the other arguments
//! as JSON in the `doran-args` header (ASCII: the front end escapes other characters).

use doran_device::{Error, ErrorCode, core::time_util::Lang};
use serde::de::DeserializeOwned;
use tauri::ipc::{InvokeBody, Request};

/// The header holding the JSON arguments.
const ARGS_HEADER: &str = "doran-args";

/// The arguments and the bytes of a raw command.
pub fn split<A: DeserializeOwned>(
    request: &Request<'_>,
    lang: Lang,
) -> Result<(A, Vec<u8>), Error> {
    let bad = || {
        Error::new(
            ErrorCode::InvalidInput,
            lang,
            "앱이 파일을 제대로 넘기지 못했어요. 다시 시도해 주세요.",
            "The app could not hand the file over. Please try again.",
        )
    };
    let args = request
        .headers()
        .get(ARGS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str(v).ok())
        .ok_or_else(bad)?;
    match request.body() {
        InvokeBody::Raw(bytes) => Ok((args, bytes.clone())),
        InvokeBody::Json(_) => Err(bad()),
    }
}
