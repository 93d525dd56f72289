//! `Constant`: the base learning rate throughout (no warm-up).

use super::{LrSchedule, SchedulerEntry};
use crate::registry::{ArgError, Args, Component, Family};

pub const ENTRY: SchedulerEntry = SchedulerEntry {
    spec: Component {
        name: "Constant",
        family: Family::Scheduler,
        doc: "Constant learning rate (no warm-up).",
        ..Component::BASE
    },
    build,
};

fn build(_: &Args) -> Result<Box<dyn LrSchedule>, ArgError> {
    Ok(Box::new(Constant))
}

#[derive(Debug, Clone, Copy)]
pub struct Constant;

impl LrSchedule for Constant {
    fn after_warmup(&self, _progress: f64) -> f64 {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::{close, Schedule};
    use super::*;

    #[test]
    fn is_constant() {
        let k = Schedule::new(Box::new(Constant), 0, 100);
        assert!(close(k.factor(0), 1.0));
        assert!(close(k.factor(99), 1.0));
    }
}
