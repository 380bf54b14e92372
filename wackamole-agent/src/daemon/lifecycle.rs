//! The agent's lifecycle after start: reload (SIGHUP), the hand-over of a
//! planned stop (SIGTERM/SIGINT) and the shutdown.

use super::agent::{alloc_config, hook_config, Agent, Batch, Trigger};
use super::bootstrap::filter_for;
use super::control::Operation;
use super::host::Host;
use crate::alloc::{Input, OperatorCommand, VifIndex};
use crate::membership::Outgoing;
use anyhow::Result;
use std::time::Duration;
use tracing::{error, info, warn};

/// How long a stop waits for the other members to take our VIFs over.
pub const HANDOVER_LIMIT: Duration = Duration::from_secs(2);

/// How long a leaving agent lets its engine say goodbye.
const GOODBYE: Duration = Duration::from_millis(500);

impl<H: Host> Agent<H> {
    /// SIGHUP: apply what can change safely, refuse the rest (logged).
    pub(super) async fn reload(&mut self) {
        self.notifier.reloading();
        let new = match self.host.read_config() {
            Ok(c) => c,
            Err(e) => {
                error!("reload refused, keeping the running configuration: {e:#}");
                self.notifier.ready("running (reload refused)");
                return;
            }
        };
        let (next, plan) = self.cfg.reloaded(&new);
        for (field, reason) in &plan.refused {
            warn!(
                "reload: `{field}` changed but needs a restart ({reason}); keeping the old value"
            );
        }
        if plan.apply.is_empty() {
            info!("reload: nothing to apply");
        }
        let balance_changed = next.balance != self.cfg.balance;
        if next.hooks != self.cfg.hooks {
            self.hooks.reconfigure(hook_config(&next));
        }
        if next.log != self.cfg.log {
            if let Some(h) = &self.log {
                let _ = h.modify(|f| {
                    *f = tracing_subscriber::EnvFilter::new(filter_for(next.log.level.as_str()))
                });
            }
        }
        self.cfg = next;
        if balance_changed {
            let cfg = alloc_config(&self.cfg);
            self.feed(Input::ConfigChanged(cfg)).await;
        }
        info!(
            "reload: applied {}",
            if plan.apply.is_empty() {
                "nothing".to_string()
            } else {
                plan.apply.join(", ")
            }
        );
        self.notifier.ready("running");
    }

    /// A planned stop hands our VIFs over before leaving: a drain of this
    /// node is one agreed message on which the new owners start answering
    /// and we go silent, so clients lose nothing. Only worth it when a mature
    /// member can take them; returns whether a hand-over started.
    pub(super) async fn begin_handover(&mut self) -> bool {
        if !self.engine_up || self.alloc.held().next().is_none() {
            return false;
        }
        let table = self.alloc.table();
        let me = table.my_index;
        // Maturity is a property of the group once anyone is mature (a mature
        // member's messages mature everyone), so any other valid, undrained
        // member of my view can take over.
        let someone_else = table.mature
            && table
                .members
                .iter()
                .enumerate()
                .any(|(i, m)| Some(i) != me && m.config_ok && m.state_received && !m.drained);
        if !someone_else {
            return false;
        }
        info!("stop requested: handing our VIFs to the other members first (a second signal stops at once)");
        self.notifier.stopping();
        let node = self.cfg.node.clone();
        let reply = self
            .operator(
                Input::Operator(OperatorCommand::Drain { node: node.clone() }),
                Operation::Moves(Trigger::Drain {
                    node,
                    for_stop: true,
                }),
            )
            .await;
        reply.ok
    }

    /// Silences and removes every VIF, leaves the group, unpins the data plane.
    pub(super) async fn shutdown(mut self, why: &str) -> Result<()> {
        info!("{why}: releasing everything and leaving the group");
        self.notifier.stopping();
        let held: Vec<VifIndex> = self.alloc.held().collect();
        let mut batch = Batch::default();
        for i in held {
            self.release(i, &mut batch);
        }
        self.flush(&mut batch).await;
        self.publish_answering();
        // Stopping now: lingering hand-overs (including those just made) end.
        self.end_lingering(true).await;
        self.unplumb_standby().await;
        self.vif_lines.flush();
        let _ = self.engine.outgoing.send(Outgoing::Shutdown).await;
        // Give the engine a moment to say goodbye so peers see us leave at once.
        let _ = tokio::time::timeout(GOODBYE, async {
            while self.engine.events.recv().await.is_some() {}
        })
        .await;
        self.host.shutdown()?;
        info!("stopped");
        Ok(())
    }
}
