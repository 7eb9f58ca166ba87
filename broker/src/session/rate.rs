//! Per-connection inbound rate limits (`limits.max_frames_per_second`,
//! `limits.max_bytes_per_second`): token buckets that refill each second.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// One connection's frame and byte budgets; unconfigured limits cost
/// nothing.
#[derive(Debug, Default)]
pub(super) struct InboundRate {
    frames: Option<Bucket>,
    bytes: Option<Bucket>,
}

/// A limiter and the per-second amount it allows.
#[derive(Debug)]
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    per_second: u32,
}

/// Which budget a connection overran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overrun {
    Frames(u32),
    Bytes(u32),
}

impl Overrun {
    /// The ERROR frame's detail text.
    pub(super) fn describe(self) -> String {
        match self {
            Overrun::Frames(n) => format!("This connection sent more than {n} frames per second."),
            Overrun::Bytes(n) => format!("This connection sent more than {n} bytes per second."),
        }
    }
}

fn per_second(limit: u64) -> Option<Bucket> {
    let n = NonZeroU32::new(u32::try_from(limit).unwrap_or(u32::MAX))?;
    Some(Bucket {
        limiter: RateLimiter::direct(Quota::per_second(n)),
        per_second: n.get(),
    })
}

impl InboundRate {
    /// Budgets for `frames` frames and `bytes` bytes per second (0 = no
    /// limit).
    pub(super) fn new(frames: u32, bytes: u64) -> InboundRate {
        InboundRate {
            frames: per_second(u64::from(frames)),
            bytes: per_second(bytes),
        }
    }

    /// Spends `n` bytes of the byte budget.
    pub(super) fn bytes(&self, n: usize) -> Result<(), Overrun> {
        spend(self.bytes.as_ref(), n).map_err(Overrun::Bytes)
    }

    /// Spends one frame of the frame budget.
    pub(super) fn frame(&self) -> Result<(), Overrun> {
        spend(self.frames.as_ref(), 1).map_err(Overrun::Frames)
    }
}

/// Takes `n` tokens; on failure returns the bucket's per-second size.
fn spend(bucket: Option<&Bucket>, n: usize) -> Result<(), u32> {
    let Some(bucket) = bucket else {
        return Ok(());
    };
    let Some(n) = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)) else {
        return Ok(());
    };
    match bucket.limiter.check_n(n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(bucket.per_second),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limits_never_refuse() {
        let rate = InboundRate::new(0, 0);
        for _ in 0..10_000 {
            assert!(rate.frame().is_ok());
            assert!(rate.bytes(1 << 20).is_ok());
        }
    }

    #[test]
    fn a_burst_over_the_budget_is_refused() {
        let rate = InboundRate::new(100, 1000);
        for _ in 0..100 {
            assert!(rate.frame().is_ok());
        }
        assert_eq!(rate.frame(), Err(Overrun::Frames(100)));
        assert!(rate.bytes(600).is_ok());
        assert_eq!(rate.bytes(600), Err(Overrun::Bytes(1000)));
        assert_eq!(rate.bytes(5000), Err(Overrun::Bytes(1000)));
    }
}
