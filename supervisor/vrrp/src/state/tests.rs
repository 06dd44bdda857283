use super::*;
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn params() -> Params {
    Params {
        vrid: 51,
        adver_int_cs: 100,
        preempt: true,
        preempt_delay_cs: 0,
        hold_preempt: false,
        accept: true,
    }
}

fn machine(priority: u8) -> Machine {
    Machine::new(params(), ip("10.0.0.2"), priority, None)
}

fn advert(src: &str, priority: u8) -> Event {
    Event::Advert {
        src: ip(src),
        priority,
        max_adver_int: 100,
    }
}

fn started(priority: u8) -> Machine {
    machine(priority).step(Event::Startup).0
}

fn master(priority: u8) -> Machine {
    started(priority)
        .step(Event::TimerExpired(Timer::MasterDown))
        .0
}

#[test]
fn rfc_timer_formulas() {
    // Priority 100, 1 s interval: skew = 156 * 100 / 256 cs = 60.9375 cs.
    assert_eq!(skew_time(100, 100), Duration::from_micros(609_375));
    assert_eq!(
        master_down_interval(100, 100),
        Duration::from_micros(3_609_375)
    );
    // 10 cs interval, priority 254: skew = 2 * 10 / 256 cs = 781.25 us.
    assert_eq!(skew_time(254, 10), Duration::from_micros(781));
    assert_eq!(skew_time(255, 100), Duration::from_micros(3906));
}

#[test]
fn startup_non_owner_becomes_backup_with_master_down_timer() {
    let (m, a) = machine(100).step(Event::Startup);
    assert_eq!(m.state(), State::Backup);
    assert_eq!(
        a,
        vec![
            Action::SetTimer(Timer::MasterDown, master_down_interval(100, 100)),
            Action::Transition {
                from: State::Initialize,
                to: State::Backup,
                cause: Cause::Startup
            },
        ]
    );
}

#[test]
fn startup_owner_becomes_master_at_once_and_announces() {
    let (m, a) = machine(255).step(Event::Startup);
    assert_eq!(m.state(), State::Master);
    assert!(a.contains(&Action::AddAddresses));
    assert!(a.contains(&Action::SendAdvert { priority: 255 }));
    assert!(a.contains(&Action::Announce));
    assert!(a.contains(&Action::SetTimer(Timer::Adver, Duration::from_secs(1))));
    assert_eq!(m.master(), Some(ip("10.0.0.2")));
}

#[test]
fn startup_with_fault_enters_fault() {
    let m = Machine::new(params(), ip("10.0.0.2"), 100, Some("db CRITICAL".into()));
    let (m, a) = m.step(Event::Startup);
    assert_eq!(m.state(), State::Fault);
    assert_eq!(a.len(), 1);
}

#[test]
fn backup_takes_over_when_master_down_timer_expires() {
    let (m, a) = started(100).step(Event::TimerExpired(Timer::MasterDown));
    assert_eq!(m.state(), State::Master);
    let add = a.iter().position(|x| *x == Action::AddAddresses).unwrap();
    let ann = a.iter().position(|x| *x == Action::Announce).unwrap();
    assert!(add < ann, "addresses must exist before they are announced");
    assert!(matches!(
        a.last(),
        Some(Action::Transition {
            cause: Cause::MasterDown,
            ..
        })
    ));
}

#[test]
fn backup_resets_timer_on_higher_or_equal_priority_and_learns_interval() {
    let m = started(100);
    let (m, a) = m.step(Event::Advert {
        src: ip("10.0.0.9"),
        priority: 100,
        max_adver_int: 10,
    });
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.master_adver_int_cs(), 10);
    assert_eq!(m.master(), Some(ip("10.0.0.9")));
    // v3: Master_Down_Interval uses the master's advertised interval.
    assert_eq!(
        a,
        vec![Action::SetTimer(
            Timer::MasterDown,
            master_down_interval(100, 10)
        )]
    );
}

#[test]
fn backup_with_preempt_ignores_lower_priority_master() {
    let (m, a) = started(200).step(advert("10.0.0.9", 100));
    assert_eq!(m.state(), State::Backup);
    assert!(
        a.is_empty(),
        "lower priority advert must not reset the timer: {a:?}"
    );
}

#[test]
fn nopreempt_backup_accepts_lower_priority_master() {
    let mut p = params();
    p.preempt = false;
    let m = Machine::new(p, ip("10.0.0.2"), 200, None)
        .step(Event::Startup)
        .0;
    let (_, a) = m.step(advert("10.0.0.9", 100));
    assert_eq!(a.len(), 1);
    assert!(matches!(a[0], Action::SetTimer(Timer::MasterDown, _)));
}

#[test]
fn preempt_delay_defers_preemption_until_it_expires() {
    let mut p = params();
    p.preempt_delay_cs = 500;
    let (m, a) = Machine::new(p, ip("10.0.0.2"), 200, None).step(Event::Startup);
    assert!(a.contains(&Action::SetTimer(
        Timer::PreemptDelay,
        Duration::from_secs(5)
    )));
    let (m, a) = m.step(advert("10.0.0.9", 100));
    assert!(matches!(a[..], [Action::SetTimer(Timer::MasterDown, _)]));
    let (m, a) = m.step(Event::TimerExpired(Timer::PreemptDelay));
    assert!(a.is_empty());
    let (_, a) = m.step(advert("10.0.0.9", 100));
    assert!(a.is_empty());
}

#[test]
fn held_preemption_waits_for_release_but_a_dead_master_is_still_replaced() {
    let mut p = params();
    p.hold_preempt = true;
    let (m, _) = Machine::new(p, ip("10.0.0.2"), 200, None).step(Event::Startup);
    assert!(m.preempt_held());
    // A lower-priority master is accepted while held: the timer restarts.
    let (m, a) = m.step(advert("10.0.0.9", 100));
    assert!(
        matches!(a[..], [Action::SetTimer(Timer::MasterDown, _)]),
        "{a:?}"
    );
    assert_eq!(m.master(), Some(ip("10.0.0.9")));
    // Released (the node has copied the master's stores): it preempts.
    let (m, a) = m.step(Event::HoldPreempt(false));
    assert!(a.is_empty() && !m.preempt_held());
    let (m, a) = m.step(advert("10.0.0.9", 100));
    assert!(
        a.is_empty(),
        "lower priority advert must not reset the timer: {a:?}"
    );
    let (m, _) = m.step(Event::TimerExpired(Timer::MasterDown));
    assert_eq!(m.state(), State::Master);

    // Held, with no master at all: Master_Down_Interval still makes it master.
    let mut p = params();
    p.hold_preempt = true;
    let (m, _) = Machine::new(p, ip("10.0.0.2"), 200, None).step(Event::Startup);
    let (m, _) = m.step(Event::TimerExpired(Timer::MasterDown));
    assert_eq!(m.state(), State::Master);
}

#[test]
fn backup_hearing_priority_zero_waits_only_skew_time() {
    let (m, a) = started(100).step(advert("10.0.0.9", 0));
    assert_eq!(m.state(), State::Backup);
    assert_eq!(
        a,
        vec![Action::SetTimer(Timer::MasterDown, skew_time(100, 100))]
    );
}

#[test]
fn master_shutdown_sends_priority_zero_and_releases_addresses() {
    let (m, a) = master(100).step(Event::Shutdown);
    assert_eq!(m.state(), State::Initialize);
    assert_eq!(
        a[..3],
        [
            Action::CancelTimer(Timer::Adver),
            Action::SendAdvert { priority: 0 },
            Action::RemoveAddresses
        ]
    );
}

#[test]
fn backup_shutdown_cancels_timers() {
    let (m, a) = started(100).step(Event::Shutdown);
    assert_eq!(m.state(), State::Initialize);
    assert!(a.contains(&Action::CancelTimer(Timer::MasterDown)));
}

#[test]
fn master_advertises_when_adver_timer_expires() {
    let (m, a) = master(100).step(Event::TimerExpired(Timer::Adver));
    assert_eq!(m.state(), State::Master);
    assert_eq!(
        a,
        vec![
            Action::SendAdvert { priority: 100 },
            Action::SetTimer(Timer::Adver, Duration::from_secs(1))
        ]
    );
}

#[test]
fn master_yields_to_higher_priority() {
    let (m, a) = master(100).step(advert("10.0.0.1", 150));
    assert_eq!(m.state(), State::Backup);
    assert_eq!(
        a[0],
        Action::SendAdvert { priority: 100 },
        "last word for the winner"
    );
    assert!(a.contains(&Action::RemoveAddresses));
    assert!(a.contains(&Action::SetTimer(
        Timer::MasterDown,
        master_down_interval(100, 100)
    )));
    assert_eq!(m.master(), Some(ip("10.0.0.1")));
}

#[test]
fn equal_priority_tie_is_broken_by_the_higher_address() {
    let (m, _) = master(100).step(advert("10.0.0.3", 100));
    assert_eq!(m.state(), State::Backup);
    let (m, a) = master(100).step(advert("10.0.0.1", 100));
    assert_eq!(m.state(), State::Master);
    assert!(a.contains(&Action::Announce));
}

#[test]
fn master_hearing_lower_master_heals_split_brain() {
    let (m, a) = master(150).step(advert("10.0.0.200", 100));
    assert_eq!(m.state(), State::Master);
    assert_eq!(
        a,
        vec![
            Action::SendAdvert { priority: 150 },
            Action::SetTimer(Timer::Adver, Duration::from_secs(1)),
            Action::Announce
        ]
    );
}

#[test]
fn master_hearing_priority_zero_advertises_at_once() {
    let (m, a) = master(150).step(advert("10.0.0.200", 0));
    assert_eq!(m.state(), State::Master);
    assert_eq!(a[0], Action::SendAdvert { priority: 150 });
}

#[test]
fn priority_drop_on_master_is_advertised_immediately() {
    let (m, a) = master(150).step(Event::Priority {
        priority: 50,
        fault: None,
    });
    assert_eq!(m.state(), State::Master);
    assert_eq!(a[0], Action::SendAdvert { priority: 50 });
    // A backup with 100 now preempts.
    let (m, _) = m.step(advert("10.0.0.1", 100));
    assert_eq!(m.state(), State::Backup);
}

#[test]
fn fault_on_master_steps_down_like_shutdown_and_recovers_to_backup() {
    let (m, a) = master(150).step(Event::Priority {
        priority: 150,
        fault: Some("raid CRITICAL".into()),
    });
    assert_eq!(m.state(), State::Fault);
    assert!(a.contains(&Action::SendAdvert { priority: 0 }));
    assert!(a.contains(&Action::RemoveAddresses));
    // Advertisements and timers are ignored while faulted.
    let (m, a) = m.step(Event::TimerExpired(Timer::MasterDown));
    assert!(a.is_empty());
    let (m, a) = m.step(Event::Priority {
        priority: 150,
        fault: None,
    });
    assert_eq!(m.state(), State::Backup);
    assert!(a.contains(&Action::Transition {
        from: State::Fault,
        to: State::Backup,
        cause: Cause::FaultCleared
    }));
}

#[test]
fn fault_on_backup_cancels_monitoring() {
    let (m, a) = started(100).step(Event::Priority {
        priority: 100,
        fault: Some("x".into()),
    });
    assert_eq!(m.state(), State::Fault);
    assert!(a.contains(&Action::CancelTimer(Timer::MasterDown)));
}

#[test]
fn owner_recovering_to_255_in_backup_takes_over() {
    let (m, _) = master(255).step(Event::Priority {
        priority: 200,
        fault: None,
    });
    let (m, _) = m.step(advert("10.0.0.9", 250));
    assert_eq!(m.state(), State::Backup);
    let (m, a) = m.step(Event::Priority {
        priority: 255,
        fault: None,
    });
    assert_eq!(m.state(), State::Master);
    assert!(a.contains(&Action::Announce));
}

#[test]
fn initialize_ignores_everything_but_startup() {
    for ev in [
        Event::Shutdown,
        Event::TimerExpired(Timer::Adver),
        advert("10.0.0.9", 200),
    ] {
        let (m, a) = machine(100).step(ev);
        assert_eq!(m.state(), State::Initialize);
        assert!(a.is_empty());
    }
}

// ---- property tests: invariants over arbitrary event sequences ----

fn arb_event() -> impl Strategy<Value = Event> {
    let addr = prop_oneof![
        Just(ip("10.0.0.1")),
        Just(ip("10.0.0.2")),
        Just(ip("10.0.0.3"))
    ];
    prop_oneof![
        Just(Event::Startup),
        Just(Event::Shutdown),
        Just(Event::TimerExpired(Timer::Adver)),
        Just(Event::TimerExpired(Timer::MasterDown)),
        Just(Event::TimerExpired(Timer::PreemptDelay)),
        (addr, any::<u8>(), 1u16..=4095).prop_map(|(src, priority, max_adver_int)| {
            Event::Advert {
                src,
                priority,
                max_adver_int,
            }
        }),
        (
            1u8..=255,
            proptest::option::of(Just("t CRITICAL".to_string()))
        )
            .prop_map(|(priority, fault)| Event::Priority { priority, fault }),
    ]
}

/// What the runtime would hold after executing the actions.
#[derive(Default)]
struct World {
    addresses: bool,
    adver: bool,
    master_down: bool,
}

proptest! {
    #[test]
    fn invariants_hold_for_any_event_sequence(
        priority in 1u8..=255,
        preempt in any::<bool>(),
        delay in prop_oneof![Just(0u32), Just(300u32)],
        events in proptest::collection::vec(arb_event(), 0..60),
    ) {
        let mut p = params();
        p.preempt = preempt;
        p.preempt_delay_cs = delay;
        let mut m = Machine::new(p, ip("10.0.0.2"), priority, None);
        let mut w = World::default();
        for ev in events {
            let before = m.state();
            let (next, actions) = m.step(ev);
            m = next;
            let mut seen_state = before;
            for a in &actions {
                match a {
                    Action::AddAddresses => { prop_assert!(!w.addresses); w.addresses = true; }
                    Action::RemoveAddresses => { prop_assert!(w.addresses); w.addresses = false; }
                    Action::SetTimer(Timer::Adver, d) => { w.adver = true; prop_assert!(!d.is_zero()); }
                    Action::SetTimer(Timer::MasterDown, _) => w.master_down = true,
                    Action::CancelTimer(Timer::Adver) => w.adver = false,
                    Action::CancelTimer(Timer::MasterDown) => w.master_down = false,
                    Action::SendAdvert { priority } => {
                        prop_assert!(*priority == 0 || *priority == m.priority());
                        prop_assert!(seen_state == State::Master || *priority == 0
                            || matches!(m.state(), State::Master));
                    }
                    Action::Announce => prop_assert!(w.addresses, "announce without addresses"),
                    Action::Transition { from, to, .. } => {
                        prop_assert_eq!(*from, seen_state);
                        prop_assert_ne!(from, to);
                        seen_state = *to;
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(seen_state, m.state(), "transition actions must end in the new state");
            // Addresses are held exactly while master.
            prop_assert_eq!(w.addresses, m.state() == State::Master);
            // A master always has its advertisement timer running, a backup its
            // master-down timer, and no state runs the other's.
            match m.state() {
                State::Master => prop_assert!(w.adver && !w.master_down),
                State::Backup => prop_assert!(w.master_down && !w.adver),
                _ => prop_assert!(!w.adver && !w.master_down),
            }
            if m.state() == State::Fault {
                prop_assert!(!w.addresses);
            }
        }
    }

    #[test]
    fn owner_is_master_right_after_startup(local in any::<[u8; 4]>()) {
        let m = Machine::new(params(), IpAddr::V4(local.into()), 255, None);
        prop_assert_eq!(m.step(Event::Startup).0.state(), State::Master);
    }

    #[test]
    fn master_down_interval_exceeds_three_intervals(p in 1u8..=255, i in 1u16..=4095) {
        let mdi = master_down_interval(p, i);
        prop_assert!(mdi >= Duration::from_millis(u64::from(i) * 30));
        prop_assert!(mdi < Duration::from_millis(u64::from(i) * 40));
        prop_assert!(skew_time(p, i) <= Duration::from_millis(u64::from(i) * 10));
    }
}
