//! Device certificates (issue 18): a user's devices vouched for by the user key or by
//! another of the user's devices, kept by the relay for the user's co-members. The
//! relay checks each certificate before keeping it — the device is the caller's
//! user's, with the key the relay knows it by; the certifier is the user key or a
//! device of the user that is not revoked; the signature verifies — but devices do
//! not take its word for it: they check the chain again from the user key they pinned
//! (`client-core/src/group/certs.rs`).

use doran_protocol::{
    DeviceId, Response, UserId,
    limits::MAX_CERTS_PER_USER,
    model::{Certifier, DeviceCert, UserCerts},
    signing::device_cert_message,
};

use super::requests::Ctx;
use crate::{
    auth::verify,
    error::{ApiError, ApiResult},
};

impl Ctx<'_> {
    pub(super) async fn publish_device_certs(&self, certs: Vec<DeviceCert>) -> ApiResult<Response> {
        let user = self.me.user;
        let (record, devices) = self
            .state
            .accounts(move |a| Ok((a.user(user)?, a.devices(user)?)))
            .await?;
        let record = record.ok_or_else(|| ApiError::not_found("no such user"))?;
        let key_of = |device: DeviceId| devices.iter().find(|d| d.id == device);
        for cert in &certs {
            let Some(device) = key_of(cert.device) else {
                return Err(ApiError::forbidden(format!(
                    "device {} is not one of this user's",
                    cert.device
                )));
            };
            if device.key != cert.device_key {
                return Err(ApiError::new(
                    doran_protocol::ErrorCode::InvalidInput,
                    format!(
                        "the certificate names another key for device {}",
                        cert.device
                    ),
                ));
            }
            let signer = match cert.by {
                Certifier::User => record.user_key,
                Certifier::Device(by) => match key_of(by) {
                    Some(d) if d.revoked_at.is_none() => d.key,
                    Some(_) => {
                        return Err(ApiError::forbidden(format!(
                            "device {by} is revoked and vouches for nobody"
                        )));
                    }
                    None => {
                        return Err(ApiError::forbidden(format!(
                            "device {by} is not one of this user's"
                        )));
                    }
                },
            };
            let message = device_cert_message(&user, &cert.device, &cert.device_key);
            verify(&signer, &message, &cert.signature)?;
        }
        let n = certs.len();
        self.state
            .accounts(move |a| a.put_device_certs(user, &certs, MAX_CERTS_PER_USER))
            .await?;
        tracing::info!(%user, certs = n, "device certificates kept");
        Ok(Response::Done)
    }

    pub(super) async fn device_certs(&self, user: UserId) -> ApiResult<Response> {
        let me = self.me.user;
        let found = self
            .state
            .accounts(move |a| {
                let shares = me == user || {
                    let mine = a.families_of(me)?;
                    let theirs = a.families_of(user)?;
                    mine.iter().any(|f| theirs.iter().any(|g| g.id == f.id))
                };
                if !shares {
                    return Ok(None);
                }
                let Some(record) = a.user(user)? else {
                    return Ok(None);
                };
                Ok(Some((record, a.device_certs(user)?, a.devices(user)?)))
            })
            .await?;
        // Strangers and unknown users get the same answer: nothing says who exists.
        let Some((record, certs, devices)) = found else {
            return Err(ApiError::forbidden(
                "only a co-member may read a user's device certificates",
            ));
        };
        Ok(Response::DeviceCerts(UserCerts {
            user,
            user_key: record.user_key,
            certs,
            revoked: devices
                .into_iter()
                .filter(|d| d.revoked_at.is_some())
                .map(|d| d.id)
                .collect(),
        }))
    }
}
