//! `doran album …`, `doran photo …`, `doran voice …`, `doran audio convert`.

use std::path::Path;

use doran_device::Device;

use super::{CmdError, CmdResult, created, saved};
use crate::{
    args::{AlbumCmd, PhotoCmd, VoiceCmd},
    print::Out,
};

pub async fn album(device: &Device, out: Out, c: AlbumCmd) -> CmdResult {
    match c {
        AlbumCmd::Create { family, name } => {
            let id = device.create_album(&family, &name).await?;
            created(device, out, &id).await
        }
        AlbumCmd::List { family } => {
            let list = device.albums(&family).await?;
            out.view(&list, || {
                list.iter()
                    .map(|a| format!("{}  {}  ({} photos)", a.id, a.name, a.count))
                    .collect()
            });
            Ok(())
        }
        AlbumCmd::Rename {
            family,
            album,
            name,
        } => {
            device.rename_album(&family, &album, &name).await?;
            saved(device, out).await
        }
        AlbumCmd::Cover {
            family,
            album,
            photo,
        } => {
            device.set_album_cover(&family, &album, &photo).await?;
            saved(device, out).await
        }
        AlbumCmd::Delete { family, album } => {
            device.delete_album(&family, &album).await?;
            saved(device, out).await
        }
    }
}

pub async fn photo(device: &Device, out: Out, c: PhotoCmd) -> CmdResult {
    match c {
        PhotoCmd::Add {
            family,
            album,
            file,
            caption,
        } => {
            let id = device.add_photo(&family, &album, &file, &caption).await?;
            let shown = device.photo(&family, &id).await?;
            let pending = device.pending().await?;
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({ "id": id, "saved": true, "pending": pending,
                        "width": shown.width, "height": shown.height })
                );
            } else {
                println!("{id}");
                eprintln!(
                    "{}×{}; saved on this device; {pending} change(s) queued for `doran sync`",
                    shown.width, shown.height
                );
            }
            Ok(())
        }
        PhotoCmd::List {
            family,
            album,
            page,
        } => {
            let p = device.photos(&family, &album, page).await?;
            out.view(&p, || {
                let mut lines: Vec<String> = p
                    .photos
                    .iter()
                    .map(|ph| format!("{}  by {}", ph.id, ph.by))
                    .collect();
                if p.has_more {
                    lines.push(format!("… more: --page {}", p.page + 1));
                }
                lines
            });
            Ok(())
        }
        PhotoCmd::Show { family, photo } => {
            let d = device.photo(&family, &photo).await?;
            out.view(&d, || {
                let mut lines = vec![format!(
                    "{}  {}×{}  by {}  {}",
                    d.photo.id, d.width, d.height, d.by_name, d.caption
                )];
                let likers: Vec<&str> = d.likers.iter().map(|l| l.name.as_str()).collect();
                lines.push(format!("♥ {}  {}", d.likers.len(), likers.join(", ")));
                lines.extend(
                    d.comments
                        .iter()
                        .map(|c| format!("  {}  {}: {}", c.id, c.by_name, c.text)),
                );
                lines
            });
            Ok(())
        }
        PhotoCmd::Get {
            family,
            photo,
            out: path,
            thumbnail,
        } => {
            let file = device.fetch_photo(&family, &photo, thumbnail).await?;
            let bytes = std::fs::copy(&file, &path)?;
            out.view(&serde_json::json!({ "bytes": bytes }), || {
                vec![path.display().to_string()]
            });
            Ok(())
        }
        PhotoCmd::Like { family, photo } => {
            device.like_photo(&family, &photo, true).await?;
            saved(device, out).await
        }
        PhotoCmd::Unlike { family, photo } => {
            device.like_photo(&family, &photo, false).await?;
            saved(device, out).await
        }
        PhotoCmd::Comment {
            family,
            photo,
            text,
        } => {
            let id = device.add_comment(&family, &photo, &text).await?;
            created(device, out, &id).await
        }
        PhotoCmd::Uncomment {
            family,
            photo,
            comment,
        } => {
            device.delete_comment(&family, &photo, &comment).await?;
            saved(device, out).await
        }
        PhotoCmd::Delete { family, photo } => {
            device.delete_photo(&family, &photo).await?;
            saved(device, out).await
        }
    }
}

pub async fn voice(device: &Device, out: Out, c: VoiceCmd) -> CmdResult {
    match c {
        VoiceCmd::Album {
            family,
            name,
            cover,
        } => {
            let id = device.create_voice_album(&family, &name, cover).await?;
            created(device, out, &id).await
        }
        VoiceCmd::Albums { family } => {
            let list = device.voice_albums(&family).await?;
            out.view(&list, || {
                list.iter()
                    .map(|a| {
                        format!(
                            "{}  {}  (cover {}, {} messages)",
                            a.id, a.name, a.cover, a.count
                        )
                    })
                    .collect()
            });
            Ok(())
        }
        VoiceCmd::EditAlbum {
            family,
            album,
            name,
            cover,
        } => {
            device
                .edit_voice_album(&family, &album, name.as_deref(), cover)
                .await?;
            saved(device, out).await
        }
        VoiceCmd::DeleteAlbum { family, album } => {
            device.delete_voice_album(&family, &album).await?;
            saved(device, out).await
        }
        VoiceCmd::Add {
            family,
            album,
            file,
            title,
        } => {
            let added = device.add_voice(&family, &album, &file, &title).await?;
            let pending = device.pending().await?;
            if out.json {
                let mut v = serde_json::to_value(&added).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("saved".into(), true.into());
                    obj.insert("pending".into(), pending.into());
                }
                println!("{v}");
            } else {
                println!("{}", added.id);
                eprintln!(
                    "{} ms; saved on this device; {pending} change(s) queued for `doran sync`",
                    added.duration_ms
                );
            }
            Ok(())
        }
        VoiceCmd::List { family, album } => {
            let list = device.voices(&family, album.as_deref()).await?;
            out.view(&list, || {
                list.iter()
                    .map(|v| {
                        format!(
                            "{}  {}  {}:{:02}  by {}",
                            v.id,
                            v.title,
                            v.duration_ms / 60_000,
                            v.duration_ms / 1000 % 60,
                            v.by_name
                        )
                    })
                    .collect()
            });
            Ok(())
        }
        VoiceCmd::Get {
            family,
            voice,
            out: path,
        } => {
            let file = device.voice_file(&family, &voice).await?;
            let bytes = std::fs::copy(&file, &path)?;
            out.view(&serde_json::json!({ "bytes": bytes }), || {
                vec![path.display().to_string()]
            });
            Ok(())
        }
        VoiceCmd::Delete { family, voice } => {
            device.delete_voice(&family, &voice).await?;
            saved(device, out).await
        }
    }
}

/// `doran audio convert IN OUT.mp3`: no account, no store.
pub fn convert(out: Out, input: &Path, output: &Path) -> CmdResult {
    let file = std::fs::File::open(input)?;
    let mut mp3 = std::io::Cursor::new(Vec::new());
    let c = doran_audio::convert(
        std::io::BufReader::new(file),
        &mut mp3,
        &doran_audio::ConvertOptions::default(),
    )
    .map_err(|e| CmdError::Local(e.to_string()))?;
    let mp3 = mp3.into_inner();
    std::fs::write(output, &mp3)?;
    out.view(
        &serde_json::json!({ "duration_ms": c.duration_ms, "peaks": c.peaks, "bytes": mp3.len() }),
        || vec![c.duration_ms.to_string()],
    );
    Ok(())
}
