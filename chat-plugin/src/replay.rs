//! What a SUBSCRIBE asks to see again (`x-since-seq` + `x-epoch`,
//! `x-history`, `x-stream-offset`) and which range that is. Never a
//! partial recovery: a range that cannot be served whole is not served.

use stompede_codec::Headers;

/// The replay a SUBSCRIBE asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Live messages only.
    Nothing,
    /// Everything after `seq` of `epoch` (gapless resume).
    Since {
        /// The last sequence number the client has.
        seq: u64,
        /// The epoch of that number.
        epoch: Option<String>,
    },
    /// The last `n` events.
    Last(u64),
    /// `x-stream-offset: first`.
    First,
    /// `x-stream-offset: last`: the newest event.
    Newest,
    /// `x-stream-offset: offset=N` (or a bare `N`): from sequence `N`.
    Offset(u64),
    /// `x-stream-offset: timestamp=T`: from the first event at or after
    /// `T` (seconds since the Unix epoch, as RabbitMQ).
    Timestamp(u64),
}

fn number(name: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{name} must be a non-negative integer, not {value:?}"))
}

/// Reads the replay headers of a SUBSCRIBE.
pub fn parse(headers: &Headers) -> Result<Request, String> {
    if let Some(seq) = headers.get("x-since-seq") {
        return Ok(Request::Since {
            seq: number("x-since-seq", seq)?,
            epoch: headers.get("x-epoch").map(str::to_owned),
        });
    }
    if let Some(k) = headers.get("x-history") {
        return Ok(Request::Last(number("x-history", k)?));
    }
    let Some(offset) = headers.get("x-stream-offset") else {
        return Ok(Request::Nothing);
    };
    Ok(match offset.trim() {
        "first" => Request::First,
        "last" => Request::Newest,
        "next" => Request::Nothing,
        other => {
            if let Some(n) = other.strip_prefix("offset=") {
                Request::Offset(number("x-stream-offset offset", n)?)
            } else if let Some(t) = other.strip_prefix("timestamp=") {
                Request::Timestamp(number("x-stream-offset timestamp", t)?)
            } else {
                Request::Offset(number("x-stream-offset", other)?)
            }
        }
    })
}

/// The room's timeline bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds<'a> {
    /// The current epoch.
    pub epoch: &'a str,
    /// The oldest stored sequence number (`head + 1` if none).
    pub low: u64,
    /// The newest sequence number (0 if none).
    pub head: u64,
    /// The most events one replay may carry.
    pub max: u64,
}

/// The events to replay (`from..=to`, empty when `from > to`) and whether
/// that is the whole of what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The first sequence number to replay.
    pub from: u64,
    /// The last one.
    pub to: u64,
    /// Whether the replay is complete (`x-recovered`).
    pub recovered: bool,
}

impl Plan {
    fn none(head: u64, recovered: bool) -> Plan {
        Plan {
            from: head + 1,
            to: head,
            recovered,
        }
    }

    /// How many events it replays.
    pub fn len(&self) -> u64 {
        (self.to + 1).saturating_sub(self.from)
    }

    /// Whether it replays nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Plans `from..=head`, refusing (not truncating) ranges that are too long
/// or reach below the oldest stored event.
fn from_seq(from: u64, b: Bounds<'_>) -> Plan {
    let from = from.max(1);
    if from < b.low {
        return Plan::none(b.head, false);
    }
    let plan = Plan {
        from,
        to: b.head,
        recovered: true,
    };
    if plan.len() > b.max {
        return Plan::none(b.head, false);
    }
    plan
}

/// Plans a request; `at_time` maps a time (ms) to the first sequence
/// number at or after it.
pub fn plan(request: &Request, b: Bounds<'_>, at_time: impl FnOnce(u64) -> u64) -> Plan {
    match request {
        Request::Nothing => Plan::none(b.head, true),
        Request::Since { seq, epoch } => {
            if epoch.as_deref() != Some(b.epoch) || *seq > b.head {
                return Plan::none(b.head, false);
            }
            from_seq(seq + 1, b)
        }
        Request::Last(n) => {
            if *n > b.max {
                return Plan::none(b.head, false);
            }
            from_seq((b.head + 1).saturating_sub(*n).max(b.low), b)
        }
        Request::First => from_seq(b.low, b),
        Request::Newest => from_seq(b.head.max(b.low), b),
        Request::Offset(n) => from_seq(*n, b),
        Request::Timestamp(t) => from_seq(at_time(t.saturating_mul(1000)).max(b.low), b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    const B: Bounds<'static> = Bounds {
        epoch: "e1",
        low: 1,
        head: 100,
        max: 50,
    };

    fn span(p: Plan) -> (u64, u64, bool) {
        (p.from, p.to, p.recovered)
    }

    #[test]
    fn parses_the_three_styles() {
        assert_eq!(parse(&h(&[])), Ok(Request::Nothing));
        assert_eq!(
            parse(&h(&[("x-since-seq", "5"), ("x-epoch", "e")])),
            Ok(Request::Since {
                seq: 5,
                epoch: Some("e".into())
            })
        );
        assert_eq!(parse(&h(&[("x-history", "3")])), Ok(Request::Last(3)));
        assert_eq!(
            parse(&h(&[("x-stream-offset", "first")])),
            Ok(Request::First)
        );
        assert_eq!(
            parse(&h(&[("x-stream-offset", "last")])),
            Ok(Request::Newest)
        );
        assert_eq!(
            parse(&h(&[("x-stream-offset", "next")])),
            Ok(Request::Nothing)
        );
        assert_eq!(
            parse(&h(&[("x-stream-offset", "offset=7")])),
            Ok(Request::Offset(7))
        );
        assert_eq!(
            parse(&h(&[("x-stream-offset", "7")])),
            Ok(Request::Offset(7))
        );
        assert_eq!(
            parse(&h(&[("x-stream-offset", "timestamp=9")])),
            Ok(Request::Timestamp(9))
        );
        assert!(parse(&h(&[("x-history", "-1")])).is_err());
        assert!(parse(&h(&[("x-stream-offset", "soon")])).is_err());
    }

    #[test]
    fn plans_whole_ranges_or_nothing() {
        let since = |seq, epoch: &str| Request::Since {
            seq,
            epoch: Some(epoch.into()),
        };
        let never = |_| unreachable!();
        assert_eq!(span(plan(&since(90, "e1"), B, never)), (91, 100, true));
        assert_eq!(span(plan(&since(100, "e1"), B, never)), (101, 100, true));
        assert_eq!(span(plan(&since(90, "e0"), B, never)), (101, 100, false));
        assert_eq!(span(plan(&since(10, "e1"), B, never)), (101, 100, false));
        assert_eq!(span(plan(&since(101, "e1"), B, never)), (101, 100, false));
        let trimmed = Bounds { low: 60, ..B };
        assert_eq!(
            span(plan(&since(58, "e1"), trimmed, never)),
            (101, 100, false)
        );
        assert_eq!(
            span(plan(&since(59, "e1"), trimmed, never)),
            (60, 100, true)
        );
        assert_eq!(span(plan(&Request::Last(5), B, never)), (96, 100, true));
        assert_eq!(span(plan(&Request::Last(51), B, never)), (101, 100, false));
        assert_eq!(
            span(plan(&Request::Last(500), trimmed, never)),
            (101, 100, false)
        );
        assert_eq!(
            span(plan(&Request::Last(50), trimmed, never)),
            (60, 100, true)
        );
        assert_eq!(span(plan(&Request::First, B, never)), (101, 100, false));
        assert_eq!(span(plan(&Request::First, trimmed, never)), (60, 100, true));
        assert_eq!(span(plan(&Request::Newest, B, never)), (100, 100, true));
        assert_eq!(span(plan(&Request::Offset(80), B, never)), (80, 100, true));
        assert_eq!(
            span(plan(&Request::Timestamp(3), B, |ms| ms / 40)),
            (75, 100, true)
        );
        let empty = Bounds {
            low: 1,
            head: 0,
            ..B
        };
        assert!(plan(&Request::First, empty, never).is_empty());
        assert!(plan(&Request::Newest, empty, never).recovered);
    }
}
