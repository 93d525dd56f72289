//! `WarmupCosineWithHardRestarts`
//! (`get_cosine_with_hard_restarts_schedule_with_warmup`): a linear
//! warm-up, then `num_cycles` cosine decays from the base rate to 0, each
//! restarting at the base rate, and 0 once the steps are done.

use std::f64::consts::PI;

use super::{LrSchedule, SchedulerEntry, WARMUP};
use crate::registry::{opt, ArgError, ArgType::*, Args, Component, Family};

pub const ENTRY: SchedulerEntry = SchedulerEntry {
    spec: Component {
        name: "WarmupCosineWithHardRestarts",
        family: Family::Scheduler,
        doc: "Linear warm-up, then cosine decay with hard restarts.",
        args: &[
            WARMUP,
            opt("num_cycles", Count, "1", "number of cosine cycles").at_least(1.0),
        ],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args) -> Result<Box<dyn LrSchedule>, ArgError> {
    Ok(Box::new(WarmupCosineWithHardRestarts {
        num_cycles: a.usize("num_cycles")? as f64,
    }))
}

#[derive(Debug, Clone, Copy)]
pub struct WarmupCosineWithHardRestarts {
    pub num_cycles: f64,
}

impl LrSchedule for WarmupCosineWithHardRestarts {
    fn after_warmup(&self, progress: f64) -> f64 {
        if progress >= 1.0 {
            return 0.0;
        }
        (0.5 * (1.0 + (PI * ((self.num_cycles * progress) % 1.0)).cos())).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{close, Schedule};
    use super::*;
    use crate::registry::{ArgValue, Args};

    #[test]
    fn restarts() {
        let r = Schedule::new(
            Box::new(WarmupCosineWithHardRestarts { num_cycles: 2.0 }),
            0,
            100,
        );
        assert!(close(r.factor(0), 1.0));
        assert!(close(r.factor(25), 0.5));
        // Restart at half way.
        assert!(close(r.factor(50), 1.0));
        assert!(close(r.factor(100), 0.0));
    }

    #[test]
    fn num_cycles_is_read() {
        // The option once was read under another name and ignored.
        let args = Args::defaults(&ENTRY.spec).with("num_cycles", ArgValue::Int(3));
        let s = Schedule::new((ENTRY.build)(&args).unwrap(), 0, 90);
        // Three cycles of 30 steps: a restart at step 30.
        assert!(close(s.factor(30), 1.0));
        assert!(s.factor(29) < 0.01);
    }
}
