//! Arbitrary agreed messages (well-formed or not) delivered to an allocator
//! in a two-member view never panic it, and what it says it holds matches
//! its acquire and release actions.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use wackamole::alloc::{Action, AllocConfig, Allocator, Input, NodeInfo, VifSpec};
use wackamole::membership::{MemberId, ViewId};

fuzz_target!(|data: &[u8]| {
    let vifs = (0..4).map(|i| VifSpec::new([format!("192.0.2.{i}/24")])).collect();
    let mut a = Allocator::new(AllocConfig::new(vifs), NodeInfo { name: "me".into() });
    let members = vec![MemberId("a".into()), MemberId("b".into())];
    let mut held = BTreeSet::new();
    let apply = |actions: Vec<Action>, held: &mut BTreeSet<u32>| {
        for act in actions {
            match act {
                Action::Acquire(v) => assert!(held.insert(v.0)),
                Action::Release(v) => assert!(held.remove(&v.0)),
                _ => {}
            }
        }
    };
    let out = a.handle(Input::View { id: ViewId(1), members, my_index: 0 });
    apply(out, &mut held);
    // Chunks: first byte picks the sender, the rest is the payload.
    for chunk in data.split(|b| *b == 0xff) {
        let (who, payload) = chunk.split_first().unwrap_or((&0, &[]));
        let sender = MemberId(if who % 2 == 0 { "a" } else { "b" }.into());
        let out = a.handle(Input::Message { sender, payload: payload.to_vec() });
        apply(out, &mut held);
        let said: BTreeSet<u32> = a.held().map(|v| v.0).collect();
        assert_eq!(said, held);
    }
});
