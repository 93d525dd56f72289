//! `WarmupLinear` (`get_linear_schedule_with_warmup`): a linear warm-up from
//! 0, then a linear decay to 0 at the last step. sentence-transformers'
//! default.

use super::{LrSchedule, SchedulerEntry, WARMUP};
use crate::registry::{ArgError, Args, Component, Family};

pub const ENTRY: SchedulerEntry = SchedulerEntry {
    spec: Component {
        name: "WarmupLinear",
        family: Family::Scheduler,
        doc: "Linear warm-up from 0, then linear decay to 0 (the sentence-transformers default).",
        args: &[WARMUP],
        ..Component::BASE
    },
    build,
};

fn build(_: &Args) -> Result<Box<dyn LrSchedule>, ArgError> {
    Ok(Box::new(WarmupLinear))
}

#[derive(Debug, Clone, Copy)]
pub struct WarmupLinear;

impl LrSchedule for WarmupLinear {
    fn after_warmup(&self, progress: f64) -> f64 {
        (1.0 - progress).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{close, Schedule};
    use super::*;

    #[test]
    fn matches_transformers() {
        // 360 steps (5,749 pairs / batch 16, rounded up), 10% warm-up = 36.
        let w = Schedule::warmup_from_fraction(0.1, 360);
        assert_eq!(w, 36);
        let s = Schedule::new(Box::new(WarmupLinear), w, 360);
        assert!(close(s.factor(0), 0.0));
        assert!(close(s.factor(18), 0.5));
        assert!(close(s.factor(36), 1.0));
        assert!(close(s.factor(198), 162.0 / 324.0));
        assert!(close(s.factor(360), 0.0));
        assert!(close(s.factor(400), 0.0));
    }
}
