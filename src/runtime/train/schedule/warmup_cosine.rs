//! `WarmupCosine` (`get_cosine_schedule_with_warmup`, half a cycle): a
//! linear warm-up, then `0.5 * (1 + cos(pi * progress))` down to 0.

use std::f64::consts::PI;

use super::{LrSchedule, SchedulerEntry, WARMUP};
use crate::registry::{ArgError, Args, Component, Family};

pub const ENTRY: SchedulerEntry = SchedulerEntry {
    spec: Component {
        name: "WarmupCosine",
        family: Family::Scheduler,
        doc: "Linear warm-up, then cosine decay to 0.",
        args: &[WARMUP],
        ..Component::BASE
    },
    build,
};

fn build(_: &Args) -> Result<Box<dyn LrSchedule>, ArgError> {
    Ok(Box::new(WarmupCosine))
}

#[derive(Debug, Clone, Copy)]
pub struct WarmupCosine;

impl LrSchedule for WarmupCosine {
    fn after_warmup(&self, progress: f64) -> f64 {
        (0.5 * (1.0 + (PI * progress).cos())).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{close, Schedule};
    use super::*;

    #[test]
    fn half_a_cosine() {
        let s = Schedule::new(Box::new(WarmupCosine), 10, 110);
        assert!(close(s.factor(5), 0.5));
        assert!(close(s.factor(10), 1.0));
        assert!(close(s.factor(60), 0.5));
        assert!(s.factor(110) < 1e-12);
    }
}
