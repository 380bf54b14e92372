//! Answers to the control socket: `list`, `status` and the operator commands.

use super::agent::{Agent, Trigger};
use super::host::Host;
use crate::alloc::{Action, Input, MemberRow, OperatorCommand, Report, TableView, VifIndex};
use crate::control::protocol::{
    DetectorStatus, FailoverInfo, ListReply, MemberRow as CtlMember, Reply, Request, StatusReply,
    VifRow as CtlVif,
};
use crate::control::server::ControlRequest;
use crate::dataplane::VipTable;
use std::collections::BTreeSet;
use std::fmt;
use std::time::SystemTime;
use tokio::time::Instant;

/// An operator command as the agent runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Operation {
    Fail,
    Recover,
    /// A command that moves VIFs: acquisitions it causes are timed from it.
    Moves(Trigger),
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Fail => f.write_str("fail"),
            Operation::Recover => f.write_str("recover"),
            Operation::Moves(t) => t.fmt(f),
        }
    }
}

/// Whether each member of `table` is mature as the allocator decides. A
/// member's STATE tells whether it was mature when it joined; one that
/// matured through the exchange itself (a valid member of a complete view in
/// which a valid member is mature) or later by its own MATURE message is
/// mature too.
pub fn members_mature(table: &TableView) -> Vec<bool> {
    let complete = table.members.iter().all(|m| m.state_received);
    let group_mature = complete && table.members.iter().any(|m| m.config_ok && m.mature);
    table
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.mature || (group_mature && m.config_ok) || (table.my_index == Some(i) && table.mature)
        })
        .collect()
}

fn member_name(m: &MemberRow) -> String {
    if m.node.is_empty() {
        m.member.to_string()
    } else {
        m.node.clone()
    }
}

impl<H: Host> Agent<H> {
    pub(super) async fn on_control(&mut self, req: ControlRequest) {
        let reply = self.answer(req.request).await;
        let _ = req.reply.send(reply);
    }

    fn vif_by_name(&self, name: &str) -> Option<VifIndex> {
        self.cfg
            .vif_index(name)
            .or_else(|| {
                self.vifs
                    .iter()
                    .position(|v| v.addresses.iter().any(|a| a.vip.addr.to_string() == name))
            })
            .map(|i| VifIndex(i as u32))
    }

    /// Runs an operator command and turns a synchronous rejection into an error reply.
    pub(super) async fn operator(&mut self, input: Input, op: Operation) -> Reply {
        let actions = self.alloc.handle(input);
        let rejected = actions.iter().find_map(|a| match a {
            Action::Report(Report::Rejected { reason, .. }) => Some(reason.clone()),
            _ => None,
        });
        if let Operation::Moves(trigger) = &op {
            self.trigger = Some((Instant::now(), trigger.clone()));
        }
        self.execute(actions).await;
        match rejected {
            Some(reason) => Reply::error(format!("{op}: {reason}")),
            None => Reply::done(format!("{op}: done")),
        }
    }

    async fn answer(&mut self, request: Request) -> Reply {
        match request {
            Request::List => Reply::list(self.list(0, usize::MAX)),
            Request::ListPage { from, max } => Reply::list(self.list(from, max)),
            Request::Status => Reply::status(self.status()),
            Request::Fail => self.operator(Input::Fail, Operation::Fail).await,
            Request::Recover => self.operator(Input::Recover, Operation::Recover).await,
            Request::Balance => {
                self.operator(
                    Input::Operator(OperatorCommand::Balance),
                    Operation::Moves(Trigger::Balance),
                )
                .await
            }
            Request::Move { vif, node } => match self.vif_by_name(&vif) {
                Some(index) => {
                    self.operator(
                        Input::Operator(OperatorCommand::Move {
                            vif: index,
                            node: node.clone(),
                        }),
                        Operation::Moves(Trigger::Move { vif, node }),
                    )
                    .await
                }
                None => Reply::error(format!("move: no VIF named {vif:?}")),
            },
            Request::Drain { node } => {
                self.operator(
                    Input::Operator(OperatorCommand::Drain { node: node.clone() }),
                    Operation::Moves(Trigger::Drain {
                        node,
                        for_stop: false,
                    }),
                )
                .await
            }
            Request::Undrain { node } => {
                self.operator(
                    Input::Operator(OperatorCommand::Undrain { node: node.clone() }),
                    Operation::Moves(Trigger::Undrain { node }),
                )
                .await
            }
        }
    }

    /// The `list` rows of VIFs `from..from + max` (fewer at the end).
    fn list(&self, from: usize, max: usize) -> ListReply {
        let held: BTreeSet<VifIndex> = self.alloc.held().collect();
        let yielding: BTreeSet<VifIndex> = self.alloc.yielding().collect();
        let vifs = self
            .vifs
            .iter()
            .enumerate()
            .skip(from)
            .take(max)
            .map(|(i, vif)| {
                let index = VifIndex(i as u32);
                let owner = self.alloc.owner_node(index);
                let mut out = CtlVif {
                    name: vif.name.clone(),
                    addresses: vif.address_texts(),
                    owner: owner.map(str::to_owned),
                    state: if yielding.contains(&index) {
                        // Handing it over: no ARP answers, traffic accepted.
                        "yielding".into()
                    } else if held.contains(&index) && self.deferred.contains(&i) {
                        // Ours, silent until the departed holder's lease
                        // has run out (it may still answer until then).
                        "waiting".into()
                    } else if held.contains(&index) {
                        "owned".into()
                    } else if self.pending_forget.contains_key(&i)
                        || self.lingering.contains_key(&i)
                    {
                        "releasing".into()
                    } else if owner.is_some() {
                        "remote".into()
                    } else {
                        "unowned".into()
                    },
                    ..Default::default()
                };
                for a in &vif.addresses {
                    if let Ok(c) = self.host.table().counters(&a.vip) {
                        out.packets += c.packets;
                        out.bytes += c.bytes;
                        out.arp_replies += c.arp_replies;
                        out.drops += c.drops;
                    }
                }
                out
            })
            .collect();
        ListReply { vifs }
    }

    fn status(&self) -> StatusReply {
        let table = self.alloc.table();
        let mature = members_mature(&table);
        StatusReply {
            node: self.cfg.node.clone(),
            engine: if self.engine_up {
                self.engine.description.clone()
            } else {
                format!("{} (down)", self.engine.description)
            },
            view: table.view.map(|v| v.to_string()).unwrap_or_default(),
            members: table
                .members
                .iter()
                .zip(mature)
                .map(|(m, mature)| CtlMember {
                    name: member_name(m),
                    mature,
                    drained: m.drained,
                    vifs: m.count,
                })
                .collect(),
            mature: table.mature,
            leader: table.members.first().map(member_name),
            last_failover: self.last_failover.as_ref().map(|f| FailoverInfo {
                at_unix_ms: f
                    .at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                took_us: f.took.as_micros() as u64,
                reason: f.reason.clone(),
            }),
            detector: self.detector_status(&table),
        }
    }

    /// The detector's view for `status`: ids shown as node names where the
    /// table knows them.
    fn detector_status(&self, table: &TableView) -> Option<DetectorStatus> {
        let d = self.cfg.detector.as_ref()?;
        let name = |id: &crate::membership::MemberId| {
            table
                .members
                .iter()
                .find(|m| &m.member == id)
                .map_or_else(|| id.to_string(), member_name)
        };
        let seen = self.detector_snapshot().unwrap_or_default();
        Some(DetectorStatus {
            mode: d.mode.name().into(),
            lost: seen.lost.iter().map(name).collect(),
            condemned: seen.condemned.iter().map(name).collect(),
            fenced: seen.fenced,
            beats_sent: seen.counts.sent,
            beats_received: seen.counts.received,
            beats_ignored: seen.counts.ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::Phase;
    use crate::membership::{MemberId, ViewId};

    fn row(name: &str, mature: bool, state: bool) -> MemberRow {
        MemberRow {
            member: MemberId(name.into()),
            node: if state { name.into() } else { String::new() },
            count: 0,
            mature,
            weight: 1,
            drained: false,
            config_ok: state,
            state_received: state,
            max_version: 2,
            ineligible: Vec::new(),
        }
    }

    fn table(members: Vec<MemberRow>, me: usize, mature: bool) -> TableView {
        TableView {
            node: "n".into(),
            phase: Phase::Run,
            view: Some(ViewId(1)),
            my_index: Some(me),
            mature,
            drained: false,
            vifs: Vec::new(),
            members,
            config_errors: Vec::new(),
            group_version: Some(2),
            handovers: Vec::new(),
        }
    }

    #[test]
    fn a_member_that_matured_through_the_exchange_is_mature() {
        // c joined immature; the exchange completed with a and b mature.
        let t = table(
            vec![
                row("a", true, true),
                row("b", true, true),
                row("c", false, true),
            ],
            0,
            true,
        );
        assert_eq!(members_mature(&t), [true, true, true]);
        // Seen from c itself.
        let t = TableView {
            my_index: Some(2),
            ..t
        };
        assert_eq!(members_mature(&t), [true, true, true]);
    }

    #[test]
    fn before_the_exchange_completes_only_states_count() {
        let t = table(vec![row("a", true, true), row("c", false, false)], 0, true);
        assert_eq!(members_mature(&t), [true, false]);
        // Nobody mature yet: nobody is.
        let t = table(vec![row("a", false, true), row("c", false, true)], 1, false);
        assert_eq!(members_mature(&t), [false, false]);
        // A member with another VIF list never matures through the group.
        let mut bad = row("x", false, true);
        bad.config_ok = false;
        let t = table(vec![row("a", true, true), bad], 0, true);
        assert_eq!(members_mature(&t), [true, false]);
    }
}
