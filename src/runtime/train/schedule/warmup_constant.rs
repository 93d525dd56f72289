//! `WarmupConstant`: a linear warm-up from 0, then the base learning rate.

use super::{LrSchedule, SchedulerEntry, WARMUP};
use crate::registry::{ArgError, Args, Component, Family};

pub const ENTRY: SchedulerEntry = SchedulerEntry {
    spec: Component {
        name: "WarmupConstant",
        family: Family::Scheduler,
        doc: "Linear warm-up from 0, then constant.",
        args: &[WARMUP],
        ..Component::BASE
    },
    build,
};

fn build(_: &Args) -> Result<Box<dyn LrSchedule>, ArgError> {
    Ok(Box::new(WarmupConstant))
}

#[derive(Debug, Clone, Copy)]
pub struct WarmupConstant;

impl LrSchedule for WarmupConstant {
    fn after_warmup(&self, _progress: f64) -> f64 {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::{close, Schedule};
    use super::*;

    #[test]
    fn warms_up_then_stays() {
        let c = Schedule::new(Box::new(WarmupConstant), 4, 100);
        assert!(close(c.factor(0), 0.0));
        assert!(close(c.factor(2), 0.5));
        assert!(close(c.factor(99), 1.0));
    }
}
