//! Device removal policy (*Windows Internals* 7th ed., Part 1, ch. 6,
//! "Plug and Play", device removal; MS docs "Removing a Device",
//! "Understanding When Remove IRPs Are Issued", "Handling an
//! IRP_MN_SURPRISE_REMOVAL Request"): which device nodes get which PnP
//! removal IRP, in which order. The kernel's PnP manager runs it over its
//! device tree and sends each IRP to the top of the node's device stack.
//!
//! - The set removed with a device is its subtree, **children before
//!   parents** (a post-order walk; siblings in enumeration order): a bus is
//!   never removed under a child that still has its stack.
//! - **Orderly removal**: `IRP_MN_QUERY_REMOVE_DEVICE` to every node of the
//!   set in that order; if one fails, `IRP_MN_CANCEL_REMOVE_DEVICE` goes to
//!   every node that was queried, the failing one included (drivers above
//!   it in its stack already said yes), in the reverse order, and the
//!   removal is vetoed; otherwise `IRP_MN_REMOVE_DEVICE` to each node in
//!   the order.
//! - **Surprise removal**: `IRP_MN_SURPRISE_REMOVAL` to every node in the
//!   order (drivers must not fail it), then `IRP_MN_REMOVE_DEVICE` to a
//!   node once no handle is open on its stack and every child in the set
//!   has had its remove ([`PendingRemoval`]); the rest waits for the last
//!   close (`DeviceNodeDeletePendingCloses`).

use alloc::vec::Vec;

/// The removal IRPs (`IRP_MJ_PNP` minor functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalIrp {
    QueryRemove,
    Remove,
    CancelRemove,
    SurpriseRemoval,
}

impl RemovalIrp {
    /// The minor function code.
    pub fn minor(self) -> u8 {
        match self {
            RemovalIrp::QueryRemove => wdk::IRP_MN_QUERY_REMOVE_DEVICE,
            RemovalIrp::Remove => wdk::IRP_MN_REMOVE_DEVICE,
            RemovalIrp::CancelRemove => wdk::IRP_MN_CANCEL_REMOVE_DEVICE,
            RemovalIrp::SurpriseRemoval => wdk::IRP_MN_SURPRISE_REMOVAL,
        }
    }
}

/// The subtree of `target`, children before parents. `parents[i]` is node
/// `i`'s parent; nodes with `live[i]` false (already deleted) and their
/// subtrees are left out. An out-of-range or deleted target gives nothing.
pub fn removal_order(parents: &[Option<usize>], live: &[bool], target: usize) -> Vec<usize> {
    let n = parents.len().min(live.len());
    if target >= n || !live[target] {
        return Vec::new();
    }
    // Children lists in index (enumeration) order.
    let mut children: Vec<Vec<usize>> = (0..n).map(|_| Vec::new()).collect();
    for (i, p) in parents.iter().take(n).enumerate() {
        if let Some(p) = *p {
            if p < n && p != i && live[i] {
                children[p].push(i);
            }
        }
    }
    // Iterative post-order: (node, next child to visit).
    let mut out = Vec::new();
    let mut seen = alloc::vec![false; n];
    let mut stack = alloc::vec![(target, 0usize)];
    seen[target] = true;
    while let Some(&mut (node, ref mut next)) = stack.last_mut() {
        if let Some(&c) = children[node].get(*next) {
            *next += 1;
            // A malformed table (a cycle) is cut where it loops.
            if !seen[c] {
                seen[c] = true;
                stack.push((c, 0));
            }
        } else {
            out.push(node);
            stack.pop();
        }
    }
    out
}

/// Runs an orderly removal of `order` (from [`removal_order`]): `send`
/// delivers one IRP to a node's stack and returns its status (0 success,
/// else the NTSTATUS). `Err((node, status))` names the node whose stack
/// vetoed the query; the cancels were sent. Remove IRPs' statuses are not
/// looked at (drivers must not fail them).
pub fn orderly<F: FnMut(usize, RemovalIrp) -> u32>(
    order: &[usize],
    mut send: F,
) -> Result<(), (usize, u32)> {
    for (k, &node) in order.iter().enumerate() {
        let s = send(node, RemovalIrp::QueryRemove);
        if s != 0 {
            for &back in order[..=k].iter().rev() {
                send(back, RemovalIrp::CancelRemove);
            }
            return Err((node, s));
        }
    }
    for &node in order {
        send(node, RemovalIrp::Remove);
    }
    Ok(())
}

/// The remove half of a removal whose nodes may wait for their handles to
/// close: which nodes can get `IRP_MN_REMOVE_DEVICE` now.
#[derive(Clone, Debug)]
pub struct PendingRemoval {
    /// The nodes, children before parents.
    nodes: Vec<usize>,
    /// For each entry, the position of its parent in `nodes` (if there).
    parent_at: Vec<Option<usize>>,
    removed: Vec<bool>,
}

impl PendingRemoval {
    /// `order` from [`removal_order`] over the same `parents`.
    pub fn new(order: &[usize], parents: &[Option<usize>]) -> Self {
        let parent_at = order
            .iter()
            .map(|&i| {
                let p = parents.get(i).copied().flatten()?;
                order.iter().position(|&x| x == p)
            })
            .collect();
        PendingRemoval {
            nodes: order.to_vec(),
            parent_at,
            removed: alloc::vec![false; order.len()],
        }
    }

    /// The nodes of the removal, children before parents.
    pub fn nodes(&self) -> &[usize] {
        &self.nodes
    }

    /// Nodes that can be removed now, in order: not removed yet, no handle
    /// open (`has_open`), and every child in the set removed (including
    /// children this call returns before them). They are marked removed.
    pub fn take_ready(&mut self, has_open: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut out = Vec::new();
        for k in 0..self.nodes.len() {
            if self.removed[k] || has_open(self.nodes[k]) {
                continue;
            }
            let child_left =
                (0..self.nodes.len()).any(|c| self.parent_at[c] == Some(k) && !self.removed[c]);
            if child_left {
                continue;
            }
            self.removed[k] = true;
            out.push(self.nodes[k]);
        }
        out
    }

    /// Nodes still waiting for their remove IRP.
    pub fn waiting(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes
            .iter()
            .zip(&self.removed)
            .filter(|(_, &r)| !r)
            .map(|(&n, _)| n)
    }

    /// Whether every node had its remove IRP.
    pub fn is_done(&self) -> bool {
        self.removed.iter().all(|&r| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    // 0 root; 1, 2 under 0; 3, 4 under 1; 5 under 3; 6 under 2.
    fn tree() -> (Vec<Option<usize>>, Vec<bool>) {
        (
            vec![None, Some(0), Some(0), Some(1), Some(1), Some(3), Some(2)],
            vec![true; 7],
        )
    }

    #[test]
    fn children_before_parents() {
        let (p, l) = tree();
        assert_eq!(removal_order(&p, &l, 1), vec![5, 3, 4, 1]);
        assert_eq!(removal_order(&p, &l, 0), vec![5, 3, 4, 1, 6, 2, 0]);
        assert_eq!(removal_order(&p, &l, 6), vec![6]);
    }

    #[test]
    fn deleted_nodes_and_bad_targets_are_left_out() {
        let (p, mut l) = tree();
        l[3] = false;
        assert_eq!(removal_order(&p, &l, 1), vec![4, 1]);
        assert!(removal_order(&p, &l, 3).is_empty());
        assert!(removal_order(&p, &l, 99).is_empty());
        // A cycle does not loop forever.
        let cyc = vec![Some(1), Some(0)];
        let out = removal_order(&cyc, &[true, true], 0);
        assert_eq!(out, vec![1, 0]);
    }

    #[test]
    fn orderly_removal_queries_then_removes() {
        let (p, l) = tree();
        let order = removal_order(&p, &l, 1);
        let mut log = Vec::new();
        let r = orderly(&order, |n, irp| {
            log.push((n, irp));
            0
        });
        assert_eq!(r, Ok(()));
        use RemovalIrp::*;
        assert_eq!(
            log,
            vec![
                (5, QueryRemove),
                (3, QueryRemove),
                (4, QueryRemove),
                (1, QueryRemove),
                (5, Remove),
                (3, Remove),
                (4, Remove),
                (1, Remove)
            ]
        );
    }

    #[test]
    fn a_veto_cancels_every_queried_node_in_reverse() {
        let (p, l) = tree();
        let order = removal_order(&p, &l, 1);
        let mut log = Vec::new();
        let r = orderly(&order, |n, irp| {
            log.push((n, irp));
            if n == 4 && irp == RemovalIrp::QueryRemove {
                0xC000_0001
            } else {
                0
            }
        });
        assert_eq!(r, Err((4, 0xC000_0001)));
        use RemovalIrp::*;
        assert_eq!(
            log,
            vec![
                (5, QueryRemove),
                (3, QueryRemove),
                (4, QueryRemove),
                (4, CancelRemove),
                (3, CancelRemove),
                (5, CancelRemove)
            ]
        );
        // A veto by the first node cancels only it.
        let mut log = Vec::new();
        let r = orderly(&order, |n, irp| {
            log.push((n, irp));
            u32::from(irp == QueryRemove) * 0xC000_0001
        });
        assert_eq!(r, Err((5, 0xC000_0001)));
        assert_eq!(log, vec![(5, QueryRemove), (5, CancelRemove)]);
    }

    #[test]
    fn an_open_handle_holds_its_node_and_ancestors_only() {
        let (p, l) = tree();
        let order = removal_order(&p, &l, 0);
        let mut r = PendingRemoval::new(&order, &p);
        // A handle open on node 3: 5 and 4, 6, 2 go; 3, 1 and 0 wait.
        let ready = r.take_ready(|n| n == 3);
        assert_eq!(ready, vec![5, 4, 6, 2]);
        assert_eq!(r.waiting().collect::<Vec<_>>(), vec![3, 1, 0]);
        assert!(!r.is_done());
        // Nothing changes while it stays open.
        assert!(r.take_ready(|n| n == 3).is_empty());
        // The close releases 3, then its parent chain in one pass.
        assert_eq!(r.take_ready(|_| false), vec![3, 1, 0]);
        assert!(r.is_done());
        assert!(r.take_ready(|_| false).is_empty());
    }

    #[test]
    fn removal_irp_codes() {
        assert_eq!(RemovalIrp::QueryRemove.minor(), 0x01);
        assert_eq!(RemovalIrp::Remove.minor(), 0x02);
        assert_eq!(RemovalIrp::CancelRemove.minor(), 0x03);
        assert_eq!(RemovalIrp::SurpriseRemoval.minor(), 0x17);
    }
}
