//! The keys `[email]` and `[sms]` share — the wait, the senders, the
//! breaker, the code's lifetime and tries, the send limits and the
//! template — and their one set of ranges.

use crate::Seconds;

/// One channel's shared keys, as read from its table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sending<'a> {
    pub wait: Seconds,
    pub timeout: Seconds,
    pub workers: u32,
    pub queue: u32,
    pub breaker_failures: u32,
    pub breaker_open: Seconds,
    pub code_lifetime: Seconds,
    pub code_tries: u32,
    pub sends_per_hour: u32,
    pub sends_per_login: u32,
    /// The per-destination limit: its key (`sends_per_address_per_hour`,
    /// `sends_per_number_per_hour`) and value.
    pub per_destination: (&'static str, u32),
    pub sends_global_per_hour: u32,
    pub template: &'a str,
}

/// The first shared key out of its range: the key and what is wrong.
pub(crate) fn problem(s: &Sending<'_>) -> Option<(&'static str, &'static str)> {
    let (per_destination, per_destination_value) = s.per_destination;
    let checks: [(&'static str, bool, &'static str); 13] = [
        ("wait", (1..=30).contains(&s.wait.0), "must be 1s to 30s"),
        (
            "timeout",
            (1..=300).contains(&s.timeout.0),
            "must be 1s to 5m",
        ),
        ("workers", (1..=16).contains(&s.workers), "must be 1 to 16"),
        ("queue", (1..=1024).contains(&s.queue), "must be 1 to 1024"),
        (
            "breaker_failures",
            (1..=100).contains(&s.breaker_failures),
            "must be 1 to 100",
        ),
        ("breaker_open", s.breaker_open.0 >= 1, "must be at least 1s"),
        (
            "code_lifetime",
            (60..=3600).contains(&s.code_lifetime.0),
            "must be 1m to 1h",
        ),
        (
            "code_tries",
            (1..=10).contains(&s.code_tries),
            "must be 1 to 10",
        ),
        (
            "sends_per_hour",
            (1..=100).contains(&s.sends_per_hour),
            "must be 1 to 100",
        ),
        (
            "sends_per_login",
            (1..=10).contains(&s.sends_per_login),
            "must be 1 to 10",
        ),
        (
            per_destination,
            (1..=1000).contains(&per_destination_value),
            "must be 1 to 1000",
        ),
        (
            "sends_global_per_hour",
            (1..=1_000_000).contains(&s.sends_global_per_hour),
            "must be 1 to 1000000",
        ),
        (
            "template",
            s.template.contains("{code}"),
            "must contain {code}",
        ),
    ];
    checks
        .into_iter()
        .find(|(_, ok, _)| !ok)
        .map(|(key, _, msg)| (key, msg))
}
