//! Routing a request allocates nothing, for prefix paths and for hosts in regex mode (one
//! multi-pattern regex): a counting allocator around many lookups. One test in its own
//! binary, so no other test allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sluice_config::{
    Action, BackendId, Forward, HostMatch, ObjectRef, PathMatch, PathRegex, Route, RouteGroup, RouteTableBuilder,
    WeightedBackend,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn group(i: u32) -> Arc<RouteGroup> {
    let owner = Arc::new(ObjectRef::new("Ingress", "ns", &format!("i{i}")));
    let label = Route::label_of(&owner);
    let forward = Forward {
        backends: Box::new([WeightedBackend { id: BackendId(i), weight: 1 }]),
        policy: Arc::default(),
        balance: Default::default(),
        errors: None,
        backend_edits: None,
    };
    let route =
        Route { owner, label, conditions: Box::new([]), filters: Box::new([]), action: Action::Forward(forward) };
    Arc::new(RouteGroup::single(route))
}

#[test]
fn routing_allocates_nothing() {
    let mut builder = RouteTableBuilder::default();
    let regex_host = HostMatch::parse(Some("regex.test")).unwrap();
    let prefix_host = HostMatch::parse(Some("prefix.test")).unwrap();
    for i in 0..1000 {
        let regex = PathRegex::new(&format!("/svc-{i:04}/v[0-9]+/items(/|$)(.*)")).unwrap();
        builder.insert(&regex_host, &PathMatch::Regex(regex), group(i)).unwrap();
        let prefix = PathMatch::parse(Some(&format!("/svc-{i:04}/v1/items")), Some("Prefix")).unwrap();
        builder.insert(&prefix_host, &prefix, group(i)).unwrap();
    }
    let table = builder.build();
    let paths: Vec<String> = (0..1000).step_by(37).map(|i| format!("/svc-{i:04}/v1/items/42")).collect();
    // The first lookups on this thread make the regex's search cache and fill its lazy DFA
    // with the states these paths visit.
    for path in &paths {
        assert!(table.route(Some("regex.test"), path).is_some());
        assert!(table.route(Some("REGEX.test"), "/SVC-0999/V7/ITEMS").is_some());
    }

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut found = 0;
    for _ in 0..100 {
        for path in &paths {
            found += usize::from(table.route(Some("regex.test"), path).is_some());
            found += usize::from(table.route(Some("prefix.test"), path).is_some());
            found += usize::from(table.route(Some("REGEX.test"), "/SVC-0999/V7/ITEMS").is_some());
        }
    }
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(found, 100 * paths.len() * 3);
    assert_eq!(allocated, 0, "{allocated} allocations in {} lookups", 100 * paths.len() * 3);
}
