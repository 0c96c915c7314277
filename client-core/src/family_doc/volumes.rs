//! The family's per-year volumes, as its document lists them (issue 17,
//! [`crate::volume`]).

use automerge::{ROOT, transaction::Transactable};
use doran_protocol::VOLUME_YEARS;

use super::{Edit, FamilyDoc};
use crate::{
    error::{DocError, Result},
    model::VOLUMES_PREFIX,
    replica::Touched,
};

impl FamilyDoc {
    /// Lists the family's volume of `year` (`v/{year}` = now), so that every device
    /// subscribes to it: written by the device that makes the year's first entity,
    /// before it writes that entity there. Listing a year listed already is no change.
    pub fn register_volume(&mut self, year: u16, now_ms: i64) -> Result<Edit> {
        self.require_member()?;
        if !VOLUME_YEARS.contains(&year) {
            return Err(DocError::BadDate(format!(
                "a volume's year is within {}–{}, not {year}",
                VOLUME_YEARS.start(),
                VOLUME_YEARS.end()
            )));
        }
        if self.view.volumes.contains(&year) {
            return Ok(Edit::unchanged(()));
        }
        let key = format!("{VOLUMES_PREFIX}{year}");
        self.edit(
            "volume.register",
            now_ms,
            &[Touched::Root(key.clone())],
            |doc| {
                doc.put(ROOT, key.as_str(), now_ms)?;
                Ok(())
            },
        )
    }
}
