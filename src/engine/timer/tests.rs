//! The timer queue's ordering, ties, cancellation and compaction.

use super::*;

fn drain_due<T: Prefetch>(queue: &mut TimerQueue<T>, now: u64) -> Vec<T> {
    std::iter::from_fn(|| {
        queue
            .pop_due(Instant::from_nanos(now))
            .map(|(_, item)| item)
    })
    .collect()
}

#[test]
fn equal_deadlines_fire_in_insertion_order() {
    let mut queue = TimerQueue::default();
    let at = Instant::from_nanos(5);
    queue.insert(at, "a");
    queue.insert(Instant::from_nanos(1), "first");
    queue.insert(at, "b");
    queue.insert(at, "c");
    assert_eq!(drain_due(&mut queue, 5), ["first", "a", "b", "c"]);
}

#[test]
fn cancelled_timers_never_fire_and_stale_keys_do_nothing() {
    let mut queue = TimerQueue::default();
    let a = queue.insert(Instant::from_nanos(1), 'a');
    let b = queue.insert(Instant::from_nanos(2), 'b');
    assert!(queue.cancel(a));
    assert!(!queue.cancel(a));
    let c = queue.insert(Instant::from_nanos(3), 'c');
    assert!(!queue.cancel(a));
    assert!(queue.is_armed(c));
    assert_eq!(queue.next_deadline(), Some(Instant::from_nanos(2)));
    assert_eq!(queue.pop_due(Instant::from_nanos(10)), Some((b, 'b')));
    assert_eq!(
        queue.pop_due(Instant::from_nanos(10)).map(|(_, v)| v),
        Some('c')
    );
    assert_eq!(queue.len(), 0);
    assert_eq!(queue.next_deadline(), None);
}

#[test]
fn not_due_is_not_popped() {
    let mut queue = TimerQueue::default();
    queue.insert(Instant::from_nanos(10), ());
    assert!(queue.pop_due(Instant::from_nanos(9)).is_none());
    assert!(queue.pop_due(Instant::from_nanos(10)).is_some());
}

#[test]
fn past_deadlines_fire_first_in_deadline_order() {
    let mut queue = TimerQueue::default();
    queue.insert(Instant::from_nanos(1_000_000), "later");
    assert_eq!(queue.next_deadline(), Some(Instant::from_nanos(1_000_000)));
    // The wheel has turned to 1 ms; these are behind it.
    queue.insert(Instant::from_nanos(500), "past-b");
    queue.insert(Instant::from_nanos(20), "past-a");
    queue.insert(Instant::from_nanos(1_000_000), "same-as-later");
    assert_eq!(
        drain_due(&mut queue, 1_000_000),
        ["past-a", "past-b", "later", "same-as-later"]
    );
}

#[test]
fn replace_keeps_the_place_in_line() {
    let mut queue = TimerQueue::default();
    let at = Instant::from_nanos(100);
    let first = queue.insert(at, 'a');
    queue.insert(at, 'b');
    let renewed = queue.replace(first, at, 'A').unwrap();
    assert!(!queue.is_armed(first));
    assert!(queue.is_armed(renewed));
    assert_eq!(drain_due(&mut queue, 100), ['A', 'b']);
    assert_eq!(queue.take_garbage(), Some(vec!['a']));
}

#[test]
fn tombstones_are_swept_when_they_outnumber_armed_timers() {
    let mut queue = TimerQueue::default();
    let keys: Vec<_> = (0..3000u64)
        .map(|i| queue.insert(Instant::from_nanos(1_000_000 + i), i))
        .collect();
    for key in &keys[..2500] {
        assert!(queue.cancel(*key));
    }
    // The sweep ran: the cancelled payloads came back as garbage, the rest still fire.
    assert!(queue.take_garbage().unwrap().len() >= 1025);
    assert_eq!(queue.len(), 500);
    assert_eq!(
        drain_due(&mut queue, 2_000_000),
        (2500..3000).collect::<Vec<u64>>()
    );
}

/// The wheel against a plain sorted model, over random deadlines spanning every level,
/// with cancellations and inserts between pops.
#[test]
fn matches_a_sorted_model_across_all_levels() {
    let mut rng = crate::engine::entropy::Rng::new(99, crate::engine::entropy::Stream::User);
    for round in 0..30 {
        let mut queue = TimerQueue::default();
        let mut model: Vec<(u64, u64, u64)> = Vec::new(); // (deadline, seq, value)
        let mut keys = Vec::new();
        let mut now = 0u64;
        let mut fired = Vec::new();
        let mut expected = Vec::new();
        for step in 0..400u64 {
            match rng.below(10) {
                0..=4 => {
                    let magnitude = rng.below(64);
                    let offset = rng.next_u64() >> magnitude;
                    let deadline = if rng.chance(1, 10) {
                        now.saturating_sub(offset % 1000)
                    } else {
                        now.saturating_add(offset)
                    };
                    let key = queue.insert(Instant::from_nanos(deadline), step);
                    model.push((deadline, key.seq, step));
                    keys.push((key, step));
                }
                5 => {
                    if !keys.is_empty() {
                        let (key, value) = keys.swap_remove(rng.below(keys.len() as u64) as usize);
                        let cancelled = queue.cancel(key);
                        let in_model = model.iter().position(|entry| entry.2 == value);
                        assert_eq!(cancelled, in_model.is_some(), "round {round}");
                        if let Some(index) = in_model {
                            model.remove(index);
                        }
                    }
                }
                _ => {
                    model.sort();
                    let next = queue.next_deadline().map(Instant::as_nanos);
                    assert_eq!(
                        next,
                        model.first().map(|entry| entry.0),
                        "round {round} step {step}"
                    );
                    if let Some(next) = next {
                        now = now.max(next);
                        while model.first().is_some_and(|entry| entry.0 <= now) {
                            expected.push(model.remove(0).2);
                        }
                        fired.extend(drain_due(&mut queue, now));
                    }
                }
            }
        }
        assert_eq!(fired, expected, "round {round}");
        assert_eq!(queue.len(), model.len());
    }
}
