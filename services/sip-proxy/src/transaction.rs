//! RFC 3261 §17 transaction state machines over UDP, as pure
//! `(state, event) -> (state, actions)` functions. The proxy core keeps one
//! state per transaction, feeds it events (responses, requests, timer
//! expiries) and executes the returned actions (send, arm timer, tell the
//! core). No sockets or clocks here.

use std::time::Duration;

/// RFC 3261 §17.1.1.1 default timer values.
pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);

/// Timer names as in RFC 3261 Table 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
}

/// Client transaction states (INVITE and non-INVITE share names; `Calling`
/// is `Trying` for non-INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE: Calling; non-INVITE: Trying. Holds the retransmit interval.
    Calling {
        invite: bool,
        interval: Duration,
    },
    Proceeding {
        invite: bool,
        interval: Duration,
    },
    Completed {
        invite: bool,
    },
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response with this status code matched the transaction.
    Response(u16),
    Timer(Timer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    /// Send the request again.
    Retransmit,
    /// Send the ACK for a non-2xx final response (§17.1.1.3).
    SendAck,
    /// Hand the response to the proxy core.
    PassUp(u16),
    /// No final response in time (Timer B/F): the core acts as if 408.
    Timeout,
    Arm(Timer, Duration),
}

/// Initial state and actions when a client transaction sends its request.
pub fn client_start(invite: bool) -> (ClientState, Vec<ClientAction>) {
    let (retx, to) = if invite {
        (Timer::A, Timer::B)
    } else {
        (Timer::E, Timer::F)
    };
    (
        ClientState::Calling {
            invite,
            interval: T1,
        },
        vec![ClientAction::Arm(retx, T1), ClientAction::Arm(to, T1 * 64)],
    )
}

/// RFC 3261 §17.1.1.2 (INVITE, figure 5) and §17.1.2.2 (non-INVITE, figure 6).
pub fn client_step(state: ClientState, ev: ClientEvent) -> (ClientState, Vec<ClientAction>) {
    use ClientAction as A;
    use ClientEvent as E;
    use ClientState as S;
    match (state, ev) {
        (S::Terminated, _) => (S::Terminated, vec![]),
        // Retransmission timers.
        (
            S::Calling {
                invite: true,
                interval,
            },
            E::Timer(Timer::A),
        ) => {
            let next = interval * 2;
            (
                S::Calling {
                    invite: true,
                    interval: next,
                },
                vec![A::Retransmit, A::Arm(Timer::A, next)],
            )
        }
        (
            S::Calling {
                invite: false,
                interval,
            }
            | S::Proceeding {
                invite: false,
                interval,
            },
            E::Timer(Timer::E),
        ) => {
            let next = if matches!(state, S::Proceeding { .. }) {
                T2
            } else {
                (interval * 2).min(T2)
            };
            let st = match state {
                S::Proceeding { .. } => S::Proceeding {
                    invite: false,
                    interval: next,
                },
                _ => S::Calling {
                    invite: false,
                    interval: next,
                },
            };
            (st, vec![A::Retransmit, A::Arm(Timer::E, next)])
        }
        (S::Calling { invite: true, .. }, E::Timer(Timer::B))
        | (
            S::Calling { invite: false, .. } | S::Proceeding { invite: false, .. },
            E::Timer(Timer::F),
        ) => (S::Terminated, vec![A::Timeout]),
        (S::Completed { invite: true }, E::Timer(Timer::D))
        | (S::Completed { invite: false }, E::Timer(Timer::K)) => (S::Terminated, vec![]),
        // Responses.
        (
            S::Calling { invite, interval } | S::Proceeding { invite, interval },
            E::Response(code),
        ) if code < 200 => (S::Proceeding { invite, interval }, vec![A::PassUp(code)]),
        (
            S::Calling { invite: true, .. } | S::Proceeding { invite: true, .. },
            E::Response(code),
        ) if code < 300 => {
            // 2xx ends the INVITE client transaction; the core forwards
            // retransmitted 2xx statelessly (§17.1.1.2).
            (S::Terminated, vec![A::PassUp(code)])
        }
        (
            S::Calling { invite: true, .. } | S::Proceeding { invite: true, .. },
            E::Response(code),
        ) => (
            S::Completed { invite: true },
            vec![
                A::SendAck,
                A::PassUp(code),
                A::Arm(Timer::D, Duration::from_secs(32)),
            ],
        ),
        (S::Completed { invite: true }, E::Response(code)) if code >= 300 => {
            (S::Completed { invite: true }, vec![A::SendAck])
        }
        (
            S::Calling { invite: false, .. } | S::Proceeding { invite: false, .. },
            E::Response(code),
        ) => (
            S::Completed { invite: false },
            vec![A::PassUp(code), A::Arm(Timer::K, T4)],
        ),
        // Anything else (stray timers, late responses) is absorbed.
        (s, _) => (s, vec![]),
    }
}

/// Server transaction states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Request passed up; `Trying` for non-INVITE before any response.
    Proceeding {
        invite: bool,
    },
    /// Final non-2xx sent (INVITE) or any final sent (non-INVITE).
    Completed {
        invite: bool,
        interval: Duration,
    },
    /// INVITE: ACK received, absorbing ACK retransmissions.
    Confirmed,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// The same request arrived again.
    Retransmission,
    /// The core sends a response with this code.
    Respond(u16),
    /// ACK matching a non-2xx final (INVITE only).
    Ack,
    Timer(Timer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// Send the response the core just gave.
    Send,
    /// Send the last response again.
    Resend,
    /// INVITE final response not acknowledged (Timer H): tell the core.
    AckTimeout,
    Arm(Timer, Duration),
}

pub fn server_start(invite: bool) -> ServerState {
    ServerState::Proceeding { invite }
}

/// RFC 3261 §17.2.1 (INVITE, figure 7) and §17.2.2 (non-INVITE, figure 8).
pub fn server_step(state: ServerState, ev: ServerEvent) -> (ServerState, Vec<ServerAction>) {
    use ServerAction as A;
    use ServerEvent as E;
    use ServerState as S;
    match (state, ev) {
        (S::Terminated, _) => (S::Terminated, vec![]),
        (S::Proceeding { invite }, E::Retransmission) => {
            (S::Proceeding { invite }, vec![A::Resend])
        }
        (S::Proceeding { invite }, E::Respond(c)) if c < 200 => {
            (S::Proceeding { invite }, vec![A::Send])
        }
        // 2xx to INVITE: the transaction ends; the TU (core) owns the rest.
        (S::Proceeding { invite: true }, E::Respond(c)) if c < 300 => {
            (S::Terminated, vec![A::Send])
        }
        (S::Proceeding { invite: true }, E::Respond(_)) => (
            S::Completed {
                invite: true,
                interval: T1,
            },
            vec![A::Send, A::Arm(Timer::G, T1), A::Arm(Timer::H, T1 * 64)],
        ),
        (S::Proceeding { invite: false }, E::Respond(_)) => (
            S::Completed {
                invite: false,
                interval: T1,
            },
            vec![A::Send, A::Arm(Timer::J, T1 * 64)],
        ),
        (S::Completed { invite, interval }, E::Retransmission) => {
            (S::Completed { invite, interval }, vec![A::Resend])
        }
        (
            S::Completed {
                invite: true,
                interval,
            },
            E::Timer(Timer::G),
        ) => {
            let next = (interval * 2).min(T2);
            (
                S::Completed {
                    invite: true,
                    interval: next,
                },
                vec![A::Resend, A::Arm(Timer::G, next)],
            )
        }
        (S::Completed { invite: true, .. }, E::Timer(Timer::H)) => {
            (S::Terminated, vec![A::AckTimeout])
        }
        (S::Completed { invite: true, .. }, E::Ack) => (S::Confirmed, vec![A::Arm(Timer::I, T4)]),
        (S::Confirmed, E::Timer(Timer::I)) => (S::Terminated, vec![]),
        (S::Completed { invite: false, .. }, E::Timer(Timer::J)) => (S::Terminated, vec![]),
        (s, _) => (s, vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invite_client_retransmits_with_doubling_then_times_out() {
        let (mut s, acts) = client_start(true);
        assert!(acts.contains(&ClientAction::Arm(Timer::B, T1 * 64)));
        let mut intervals = vec![];
        for _ in 0..3 {
            let (n, a) = client_step(s, ClientEvent::Timer(Timer::A));
            s = n;
            intervals.push(a[1]);
        }
        assert_eq!(
            intervals,
            vec![
                ClientAction::Arm(Timer::A, T1 * 2),
                ClientAction::Arm(Timer::A, T1 * 4),
                ClientAction::Arm(Timer::A, T1 * 8)
            ]
        );
        let (s, a) = client_step(s, ClientEvent::Timer(Timer::B));
        assert_eq!(
            (s, a),
            (ClientState::Terminated, vec![ClientAction::Timeout])
        );
    }

    #[test]
    fn invite_client_acks_non_2xx_once_per_retransmission() {
        let (s, _) = client_start(true);
        let (s, a) = client_step(s, ClientEvent::Response(180));
        assert_eq!(a, vec![ClientAction::PassUp(180)]);
        // Timer A no longer retransmits once a provisional arrived.
        let (s, a) = client_step(s, ClientEvent::Timer(Timer::A));
        assert!(a.is_empty());
        let (s, a) = client_step(s, ClientEvent::Response(486));
        assert_eq!(a[0], ClientAction::SendAck);
        assert_eq!(a[1], ClientAction::PassUp(486));
        let (s, a) = client_step(s, ClientEvent::Response(486));
        assert_eq!(a, vec![ClientAction::SendAck]);
        let (s, _) = client_step(s, ClientEvent::Timer(Timer::D));
        assert_eq!(s, ClientState::Terminated);
    }

    #[test]
    fn invite_client_2xx_terminates() {
        let (s, _) = client_start(true);
        let (s, a) = client_step(s, ClientEvent::Response(200));
        assert_eq!(
            (s, a),
            (ClientState::Terminated, vec![ClientAction::PassUp(200)])
        );
    }

    #[test]
    fn non_invite_client_caps_at_t2_and_waits_k() {
        let (mut s, _) = client_start(false);
        let mut last = Duration::ZERO;
        for _ in 0..6 {
            let (n, a) = client_step(s, ClientEvent::Timer(Timer::E));
            s = n;
            if let ClientAction::Arm(Timer::E, d) = a[1] {
                last = d;
            }
        }
        assert_eq!(last, T2);
        let (s, a) = client_step(s, ClientEvent::Response(200));
        assert_eq!(
            a,
            vec![ClientAction::PassUp(200), ClientAction::Arm(Timer::K, T4)]
        );
        // Retransmitted final is absorbed.
        let (s, a) = client_step(s, ClientEvent::Response(200));
        assert!(a.is_empty());
        assert_eq!(
            client_step(s, ClientEvent::Timer(Timer::K)).0,
            ClientState::Terminated
        );
    }

    #[test]
    fn invite_server_resends_final_until_ack() {
        let s = server_start(true);
        let (s, a) = server_step(s, ServerEvent::Respond(100));
        assert_eq!(a, vec![ServerAction::Send]);
        let (s, a) = server_step(s, ServerEvent::Retransmission);
        assert_eq!(a, vec![ServerAction::Resend]);
        let (s, a) = server_step(s, ServerEvent::Respond(404));
        assert!(a.contains(&ServerAction::Arm(Timer::H, T1 * 64)));
        let (s, a) = server_step(s, ServerEvent::Timer(Timer::G));
        assert_eq!(
            a,
            vec![ServerAction::Resend, ServerAction::Arm(Timer::G, T1 * 2)]
        );
        let (s, a) = server_step(s, ServerEvent::Ack);
        assert_eq!(
            (s, a),
            (
                ServerState::Confirmed,
                vec![ServerAction::Arm(Timer::I, T4)]
            )
        );
        let (s, a) = server_step(s, ServerEvent::Ack);
        assert!(a.is_empty());
        assert_eq!(
            server_step(s, ServerEvent::Timer(Timer::I)).0,
            ServerState::Terminated
        );
    }

    #[test]
    fn invite_server_h_reports_missing_ack() {
        let (s, _) = server_step(server_start(true), ServerEvent::Respond(480));
        let (s, a) = server_step(s, ServerEvent::Timer(Timer::H));
        assert_eq!(
            (s, a),
            (ServerState::Terminated, vec![ServerAction::AckTimeout])
        );
    }

    fn client_ev() -> impl Strategy<Value = ClientEvent> {
        prop_oneof![
            (100u16..700).prop_map(ClientEvent::Response),
            prop::sample::select(vec![
                Timer::A,
                Timer::B,
                Timer::D,
                Timer::E,
                Timer::F,
                Timer::K
            ])
            .prop_map(ClientEvent::Timer),
        ]
    }

    fn server_ev() -> impl Strategy<Value = ServerEvent> {
        prop_oneof![
            Just(ServerEvent::Retransmission),
            Just(ServerEvent::Ack),
            (100u16..700).prop_map(ServerEvent::Respond),
            prop::sample::select(vec![Timer::G, Timer::H, Timer::I, Timer::J])
                .prop_map(ServerEvent::Timer),
        ]
    }

    proptest! {
        // Whatever arrives, a client transaction passes up at most one final
        // response or one timeout, never both, and terminated stays quiet.
        #[test]
        fn client_at_most_one_final(invite: bool, evs in prop::collection::vec(client_ev(), 0..40)) {
            let (mut s, _) = client_start(invite);
            let mut finals = 0;
            for e in evs {
                let (n, acts) = client_step(s, e);
                if s == ClientState::Terminated { prop_assert!(acts.is_empty()); }
                for a in acts {
                    match a {
                        ClientAction::PassUp(c) if c >= 200 => finals += 1,
                        ClientAction::Timeout => finals += 1,
                        _ => {}
                    }
                }
                s = n;
            }
            prop_assert!(finals <= 1);
        }

        // A server transaction sends at most one final response.
        #[test]
        fn server_at_most_one_final(invite: bool, evs in prop::collection::vec(server_ev(), 0..40)) {
            let mut s = server_start(invite);
            let mut finals = 0;
            for e in evs {
                let (n, acts) = server_step(s, e);
                if let ServerEvent::Respond(c) = e {
                    if c >= 200 && acts.contains(&ServerAction::Send) { finals += 1; }
                }
                s = n;
            }
            prop_assert!(finals <= 1);
        }
    }
}
