//! The pure table computations: resolving a view's claims, giving free VIFs
//! to the least-loaded members and planning balance rounds. All of them are
//! linear in VIFs (plus a log factor in members), never VIFs × members.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

use super::Priority;

/// One VIF in the agreed table: owner as a member index of the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub owner: Option<u32>,
    pub prio: Priority,
}

impl Slot {
    pub const EMPTY: Slot = Slot {
        owner: None,
        prio: Priority::Unclaimed,
    };
}

/// What resolution needs to know about one member.
pub(crate) struct MemberInput<'a> {
    /// Its VIF list matches the reference: its claims count.
    pub valid: bool,
    /// It may receive VIFs (valid and not drained).
    pub eligible: bool,
    pub weight: u32,
    pub held: &'a [(u32, Priority)],
    pub prefer: &'a [u32],
    /// Held VIFs it does not answer for (a hand-over was under way): its
    /// claim counts only if no member answering for the VIF claims it.
    pub yielding: &'a BTreeSet<u32>,
    /// VIFs it may not hold (no carrier).
    pub ineligible: &'a BTreeSet<u32>,
}

impl MemberInput<'_> {
    /// May hold VIF v.
    pub fn can_hold(&self, v: u32) -> bool {
        self.eligible && !self.ineligible.contains(&v)
    }
}

/// `a` is lighter than `b` after each receives one more VIF: compares
/// (count+1)/weight without division.
fn lighter_after_one(a: (u32, u32), b: (u32, u32)) -> Ordering {
    let (ca, wa) = (u64::from(a.0) + 1, u64::from(a.1.max(1)));
    let (cb, wb) = (u64::from(b.0) + 1, u64::from(b.1.max(1)));
    (ca * wb).cmp(&(cb * wa))
}

/// A candidate recipient in the heap; "greater" = should receive first.
#[derive(PartialEq, Eq)]
struct Load {
    count: u32,
    weight: u32,
    index: u32,
}

impl Ord for Load {
    fn cmp(&self, other: &Self) -> Ordering {
        lighter_after_one((other.count, other.weight), (self.count, self.weight))
            .then(other.index.cmp(&self.index))
    }
}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Picks recipients for free VIFs: the eligible member with the lowest
/// (count+1)/weight, ties to the lowest index (wackamole: fewest, lowest index).
pub(crate) struct Recipients {
    heap: BinaryHeap<Load>,
}

impl Recipients {
    pub fn new(counts: &[u32], weights: &[u32], eligible: &[bool]) -> Self {
        let heap = (0..counts.len())
            .filter(|&i| eligible[i])
            .map(|i| Load {
                count: counts[i],
                weight: weights[i].max(1),
                index: i as u32,
            })
            .collect();
        Self { heap }
    }

    /// The next recipient that passes `ok` (members without carrier for the
    /// VIF are skipped, not charged); its count is taken as one higher
    /// afterwards.
    pub fn take_where(&mut self, ok: impl Fn(u32) -> bool) -> Option<u32> {
        let mut skipped = Vec::new();
        let mut found = None;
        while let Some(mut top) = self.heap.pop() {
            if ok(top.index) {
                found = Some(top.index);
                top.count += 1;
                self.heap.push(top);
                break;
            }
            skipped.push(top);
        }
        self.heap.extend(skipped);
        found
    }

    /// Another VIF went to `index` outside the heap's choice.
    pub fn rebuild(&mut self, counts: &[u32], weights: &[u32], eligible: &[bool]) {
        *self = Self::new(counts, weights, eligible);
    }
}

/// Resolves a view's table from every member's STATE, applied in delivery
/// order `order`:
/// - claims: the first claimant keeps a VIF unless a later one has a higher
///   priority (PREFER_CLAIMED beats CLAIMED); invalid members' claims are
///   ignored; a yielding claim counts only if nobody answering claims it;
/// - preferences: a VIF goes to its PREFER_CLAIMED holder if it may hold it,
///   else to the first member (in delivery order) that prefers it and may;
/// - claims by members that may not hold the VIF (drained, no carrier) are
///   dropped;
/// - every VIF still free goes to the least-loaded member that may hold it.
///
/// Returns the table and each member's count.
pub(crate) fn resolve(
    vif_count: usize,
    members: &[MemberInput<'_>],
    order: &[usize],
) -> (Vec<Slot>, Vec<u32>) {
    let mut table = vec![Slot::EMPTY; vif_count];
    let mut preferred_by: Vec<Option<u32>> = vec![None; vif_count];
    for yielding_pass in [false, true] {
        let mut taken_now = vec![false; if yielding_pass { vif_count } else { 0 }];
        for &s in order {
            let Some(m) = members.get(s) else { continue };
            if !m.valid {
                continue;
            }
            for &(v, p) in m.held {
                if m.yielding.contains(&v) != yielding_pass {
                    continue;
                }
                let Some(slot) = table.get_mut(v as usize) else {
                    continue;
                };
                if p != Priority::Claimed && p != Priority::PreferClaimed {
                    continue;
                }
                if yielding_pass {
                    // Only VIFs nobody answering claimed.
                    if slot.owner.is_some() && !taken_now[v as usize] {
                        continue;
                    }
                    taken_now[v as usize] = true;
                }
                if slot.owner.is_none() || p > slot.prio {
                    *slot = Slot {
                        owner: Some(s as u32),
                        prio: p,
                    };
                }
            }
            if !yielding_pass {
                for &v in m.prefer {
                    if m.can_hold(v) {
                        if let Some(p) = preferred_by.get_mut(v as usize) {
                            p.get_or_insert(s as u32);
                        }
                    }
                }
            }
        }
    }
    let weights: Vec<u32> = members.iter().map(|m| m.weight).collect();
    let eligible: Vec<bool> = members.iter().map(|m| m.eligible).collect();
    let mut counts = vec![0u32; members.len()];
    let mut free = Vec::new();
    for (v, slot) in table.iter_mut().enumerate() {
        let holder_ok = slot
            .owner
            .is_some_and(|o| members[o as usize].can_hold(v as u32));
        *slot = if holder_ok && slot.prio == Priority::PreferClaimed {
            *slot
        } else if let Some(q) = preferred_by[v] {
            Slot {
                owner: Some(q),
                prio: Priority::PreferClaimed,
            }
        } else if holder_ok {
            Slot {
                owner: slot.owner,
                prio: Priority::Claimed,
            }
        } else {
            free.push(v);
            Slot::EMPTY
        };
        if let Some(o) = slot.owner {
            counts[o as usize] += 1;
        }
    }
    let mut recipients = Recipients::new(&counts, &weights, &eligible);
    for v in free {
        if let Some(to) = recipients.take_where(|i| members[i as usize].can_hold(v as u32)) {
            table[v] = Slot {
                owner: Some(to),
                prio: Priority::Claimed,
            };
            counts[to as usize] += 1;
        }
    }
    (table, counts)
}

/// Is moving one VIF from `a` to `b` an improvement (weighted: counts
/// proportional to weight)? For equal weights: counts differ by more than one.
pub(crate) fn worth_moving(a: (u32, u32), b: (u32, u32)) -> bool {
    let (ca, wa) = (u64::from(a.0), u64::from(a.1.max(1)));
    let (cb, wb) = (u64::from(b.0), u64::from(b.1.max(1)));
    ca >= 1 && (ca - 1) * wb >= (cb + 1) * wa
}

/// Plans one balance round (leader only): up to `limit` times, move the first
/// movable (CLAIMED, not `busy`) VIF of the most loaded member that the least
/// loaded one may hold (`can_hold(member, vif)`) to it, as long as that is an
/// improvement. Returns (vif, from, to) triples.
pub(crate) fn plan_balance(
    table: &[Slot],
    counts: &[u32],
    weights: &[u32],
    eligible: &[bool],
    limit: usize,
    busy: impl Fn(u32) -> bool,
    can_hold: impl Fn(u32, u32) -> bool,
) -> Vec<(u32, u32, u32)> {
    let n = counts.len();
    let mut movable: Vec<VecDeque<u32>> = vec![VecDeque::new(); n];
    for (v, slot) in table.iter().enumerate() {
        if let Some(o) = slot.owner {
            if slot.prio == Priority::Claimed
                && eligible.get(o as usize) == Some(&true)
                && !busy(v as u32)
            {
                movable[o as usize].push_back(v as u32);
            }
        }
    }
    let mut counts = counts.to_vec();
    let w = |i: usize| u64::from(weights[i].max(1));
    let mut moves = Vec::new();
    while moves.len() < limit {
        // Most loaded with something movable: highest (count-1)/weight.
        let mut a: Option<usize> = None;
        for i in 0..n {
            if !eligible[i] || movable[i].is_empty() {
                continue;
            }
            a = match a {
                Some(j)
                    if u64::from(counts[i]).saturating_sub(1) * w(j)
                        <= u64::from(counts[j]).saturating_sub(1) * w(i) =>
                {
                    Some(j)
                }
                _ => Some(i),
            };
        }
        // Least loaded: lowest (count+1)/weight.
        let mut b: Option<usize> = None;
        for i in 0..n {
            if !eligible[i] {
                continue;
            }
            b = match b {
                Some(j)
                    if lighter_after_one((counts[j], weights[j]), (counts[i], weights[i]))
                        != Ordering::Greater =>
                {
                    Some(j)
                }
                _ => Some(i),
            };
        }
        let (Some(a), Some(b)) = (a, b) else { break };
        if a == b || !worth_moving((counts[a], weights[a]), (counts[b], weights[b])) {
            break;
        }
        let Some(k) = movable[a].iter().position(|&v| can_hold(b as u32, v)) else {
            break;
        };
        let Some(v) = movable[a].remove(k) else {
            break;
        };
        counts[a] = counts[a].saturating_sub(1);
        counts[b] += 1;
        moves.push((v, a as u32, b as u32));
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    static NONE: BTreeSet<u32> = BTreeSet::new();

    fn member<'a>(held: &'a [(u32, Priority)], prefer: &'a [u32]) -> MemberInput<'a> {
        MemberInput {
            valid: true,
            eligible: true,
            weight: 1,
            held,
            prefer,
            yielding: &NONE,
            ineligible: &NONE,
        }
    }

    #[test]
    fn answering_claims_beat_yielding_ones_and_carrier_counts() {
        let a = [(0, Priority::Claimed), (1, Priority::Claimed)];
        let b = [(0, Priority::Claimed), (1, Priority::Claimed)];
        let y: BTreeSet<u32> = [0, 1].into();
        let mut m = vec![member(&a, &[]), member(&b, &[])];
        m[0].yielding = &y;
        let (t, _) = resolve(2, &m, &[0, 1]);
        assert_eq!((t[0].owner, t[1].owner), (Some(1), Some(1)));
        // Only yielding claims: the yielder keeps it.
        let (t, _) = resolve(2, &m[..1], &[0]);
        assert_eq!(t[0].owner, Some(0));
        // No carrier for VIF 1 at member 1: it goes to member 0.
        let inel: BTreeSet<u32> = [1].into();
        let mut m = vec![member(&[], &[]), member(&b, &[1])];
        m[1].ineligible = &inel;
        let (t, _) = resolve(3, &m, &[0, 1]);
        assert_eq!((t[0].owner, t[1].owner), (Some(1), Some(0)));
    }

    #[test]
    fn first_claim_wins_unless_outranked() {
        let a = [(0, Priority::Claimed), (1, Priority::Claimed)];
        let b = [(0, Priority::Claimed), (1, Priority::PreferClaimed)];
        let (t, counts) = resolve(3, &[member(&a, &[]), member(&b, &[1])], &[0, 1]);
        assert_eq!(t[0].owner, Some(0));
        assert_eq!(
            t[1],
            Slot {
                owner: Some(1),
                prio: Priority::PreferClaimed
            }
        );
        // The free VIF goes to the least loaded, lowest index on ties.
        assert_eq!(t[2].owner, Some(0));
        assert_eq!(counts, vec![2, 1]);
        // Delivery order decides between equal claims.
        let (t, _) = resolve(3, &[member(&a, &[]), member(&b, &[1])], &[1, 0]);
        assert_eq!(t[0].owner, Some(1));
    }

    #[test]
    fn preference_beats_plain_claim_and_drained_members_lose_everything() {
        let a = [(0, Priority::Claimed), (1, Priority::Claimed)];
        let mut m = vec![member(&a, &[]), member(&[], &[0])];
        let (t, _) = resolve(2, &m, &[0, 1]);
        assert_eq!(
            t[0],
            Slot {
                owner: Some(1),
                prio: Priority::PreferClaimed
            }
        );
        m[0].eligible = false;
        let (t, counts) = resolve(2, &m, &[0, 1]);
        assert_eq!(t[1].owner, Some(1));
        assert_eq!(counts, vec![0, 2]);
    }

    #[test]
    fn weights_shape_the_pool() {
        let mut m = vec![member(&[], &[]), member(&[], &[])];
        m[1].weight = 3;
        let (_, counts) = resolve(8, &m, &[0, 1]);
        assert_eq!(counts, vec![2, 6]);
    }

    #[test]
    fn balance_moves_from_most_to_least_loaded() {
        let table: Vec<Slot> = (0..6)
            .map(|_| Slot {
                owner: Some(0),
                prio: Priority::Claimed,
            })
            .collect();
        let any = |_: u32, _: u32| true;
        let idle = |_: u32| false;
        let moves = plan_balance(&table, &[6, 0, 0], &[1, 1, 1], &[true; 3], 1, idle, any);
        assert_eq!(moves, vec![(0, 0, 1)]);
        let moves = plan_balance(
            &table,
            &[6, 0, 0],
            &[1, 1, 1],
            &[true; 3],
            usize::MAX,
            idle,
            any,
        );
        assert_eq!(moves, vec![(0, 0, 1), (1, 0, 2), (2, 0, 1), (3, 0, 2)]);
        // VIF 0 is being handed over; member 1 has no carrier for VIF 1.
        let moves = plan_balance(
            &table,
            &[6, 0, 0],
            &[1, 1, 1],
            &[true; 3],
            1,
            |v| v == 0,
            |m, v| !(m == 1 && v == 1),
        );
        assert_eq!(moves, vec![(2, 0, 1)]);
    }

    proptest! {
        /// An unlimited round always reaches the balance criterion.
        #[test]
        fn unlimited_balance_converges(
            owners in proptest::collection::vec(0u32..6, 0..60),
            weights in proptest::collection::vec(1u32..5, 6),
        ) {
            let table: Vec<Slot> = owners.iter().map(|&o| Slot { owner: Some(o), prio: Priority::Claimed }).collect();
            let mut counts = vec![0u32; 6];
            for &o in &owners { counts[o as usize] += 1; }
            let moves = plan_balance(&table, &counts, &weights, &[true; 6], usize::MAX, |_| false, |_, _| true);
            for (v, from, to) in moves {
                prop_assert_eq!(owners[v as usize], from);
                counts[from as usize] -= 1;
                counts[to as usize] += 1;
            }
            for a in 0..6 {
                for b in 0..6 {
                    prop_assert!(!worth_moving((counts[a], weights[a]), (counts[b], weights[b])) || a == b,
                        "{:?} {:?}", counts, weights);
                }
            }
        }
    }
}
