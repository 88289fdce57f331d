//! BatchGetUsers as notifications calls it (through notifications' egress
//! sidecar, as root may for operations): a page of profiles with their
//! roles.

use std::sync::Arc;

use anyhow::Context;
use interlock_common::client::{Outbound, channel};
use interlock_e2e::{Target, register_and_login_over};
use interlock_mesh::Mesh;
use interlock_proto::users::v1::BatchGetUsersRequest;
use interlock_proto::users::v1::users_internal_client::UsersInternalClient;
use interlock_testkit::Caller;
use tonic::transport::Channel;

use crate::Plan;
use crate::load::{closed_loop, code};
use crate::report::Fragment;

/// Profiles per call.
const PAGE: usize = 20;
/// Callers at once.
const CALLERS: usize = 8;

pub async fn run(
    f: &mut Fragment,
    plan: &Plan,
    mesh: &Mesh,
    channels: &[Channel],
) -> anyhow::Result<()> {
    let mut ids = Vec::with_capacity(PAGE);
    for i in 0..PAGE {
        let ch = channels[(i + 40) % channels.len()].clone();
        let login = crate::edge::unique("bbatch");
        ids.push(
            register_and_login_over(
                &Target::Local(mesh.clone()),
                Caller::default().over(ch),
                &login,
            )
            .await
            .user_id,
        );
    }
    let egress = channel(
        &format!("unix:{}", mesh.egress_socket("notifications").display()),
        Outbound::default(),
    )
    .map_err(anyhow::Error::msg)
    .context("notifications' egress socket")?;
    let ids = Arc::new(ids);
    let out = closed_loop(CALLERS, plan.scenario, move |_, _| {
        let mut users = UsersInternalClient::new(egress.clone());
        let ids = ids.clone();
        async move {
            let answer = users
                .batch_get_users(BatchGetUsersRequest { ids: ids.to_vec() })
                .await;
            if let Ok(a) = &answer
                && (a.get_ref().users.len() != PAGE
                    || a.get_ref().users.iter().any(|u| u.roles.is_empty()))
            {
                return Err(tonic::Code::DataLoss);
            }
            code(answer)
        }
    })
    .await;
    f.run("batchgetusers", &out);
    let scenario = format!("BatchGetUsers ({PAGE} profiles with roles)");
    f.row(&scenario, "calls/s", out.achieved_rps, "req/s")
        .note(format!(
            "{CALLERS} callers through notifications' egress sidecar; errors {:?}",
            out.errors
        ));
    f.row(&scenario, "p99", out.p99_ms, "ms");
    Ok(())
}
