//! Container readers of our own: a streaming EBML (WebM/Matroska) reader and the Ogg/Opus
//! page walker. MP4, WAV and MP3 are read by symphonia (see `symphonia_source`).

pub(crate) mod ebml;
pub(crate) mod ogg_opus;
