//! Learning-rate schedules with the semantics of sentence-transformers'
//! `fit` (which uses the `transformers` schedule functions): the factor for
//! optimizer step `k` (0-based) is `lambda(k)`, so a warm-up starts at 0.

use std::f64::consts::PI;

/// A schedule kind, as named in pipelines (`WarmupLinear`, ...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScheduleKind {
    Constant,
    WarmupConstant,
    WarmupLinear,
    /// Half a cosine wave after warm-up (transformers' default 0.5 cycles).
    WarmupCosine,
    /// `cycles` hard restarts of the cosine after warm-up.
    WarmupCosineWithHardRestarts {
        cycles: f64,
    },
}

impl ScheduleKind {
    /// Parse a schedule name case-insensitively, as sentence-transformers
    /// spells them (`warmuplinear`, `WarmupLinear`, `warmup_linear`).
    pub fn from_name(name: &str) -> Option<Self> {
        let n: String = name
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        Some(match n.as_str() {
            "constant" | "constantlr" => ScheduleKind::Constant,
            "warmupconstant" => ScheduleKind::WarmupConstant,
            "warmuplinear" => ScheduleKind::WarmupLinear,
            "warmupcosine" => ScheduleKind::WarmupCosine,
            "warmupcosinewithhardrestarts" => {
                ScheduleKind::WarmupCosineWithHardRestarts { cycles: 1.0 }
            }
            _ => return None,
        })
    }
}

/// A schedule bound to a warm-up length and a total number of steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    pub fn new(kind: ScheduleKind, warmup_steps: u64, total_steps: u64) -> Self {
        Schedule {
            kind,
            warmup_steps,
            total_steps,
        }
    }

    /// Warm-up given as a fraction of the total steps (`warmup: 10%`),
    /// rounded up as sentence-transformers does (`math.ceil`).
    pub fn warmup_from_fraction(fraction: f64, total_steps: u64) -> u64 {
        (fraction * total_steps as f64).ceil().max(0.0) as u64
    }

    /// The multiplier of the base learning rate at optimizer step `step`.
    pub fn factor(&self, step: u64) -> f64 {
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        let in_warmup = step < self.warmup_steps;
        let warm = s / w.max(1.0);
        let progress = (s - w) / (t - w).max(1.0);
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::WarmupConstant => {
                if in_warmup {
                    warm
                } else {
                    1.0
                }
            }
            ScheduleKind::WarmupLinear => {
                if in_warmup {
                    warm
                } else {
                    ((t - s) / (t - w).max(1.0)).max(0.0)
                }
            }
            ScheduleKind::WarmupCosine => {
                if in_warmup {
                    warm
                } else {
                    (0.5 * (1.0 + (PI * 0.5 * 2.0 * progress).cos())).max(0.0)
                }
            }
            ScheduleKind::WarmupCosineWithHardRestarts { cycles } => {
                if in_warmup {
                    warm
                } else if progress >= 1.0 {
                    0.0
                } else {
                    (0.5 * (1.0 + (PI * ((cycles * progress) % 1.0)).cos())).max(0.0)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            ScheduleKind::from_name("WarmupLinear"),
            Some(ScheduleKind::WarmupLinear)
        );
        assert_eq!(
            ScheduleKind::from_name("warmup_cosine"),
            Some(ScheduleKind::WarmupCosine)
        );
        assert_eq!(ScheduleKind::from_name("linear-ish"), None);
    }

    #[test]
    fn warmup_linear_matches_transformers() {
        // 360 steps (5,749 pairs / batch 16, rounded up), 10% warm-up = 36.
        let w = Schedule::warmup_from_fraction(0.1, 360);
        assert_eq!(w, 36);
        let s = Schedule::new(ScheduleKind::WarmupLinear, w, 360);
        assert!(close(s.factor(0), 0.0));
        assert!(close(s.factor(18), 0.5));
        assert!(close(s.factor(36), 1.0));
        assert!(close(s.factor(198), 162.0 / 324.0));
        assert!(close(s.factor(360), 0.0));
        assert!(close(s.factor(400), 0.0));
    }

    #[test]
    fn cosine_and_restarts() {
        let s = Schedule::new(ScheduleKind::WarmupCosine, 10, 110);
        assert!(close(s.factor(5), 0.5));
        assert!(close(s.factor(10), 1.0));
        assert!(close(s.factor(60), 0.5));
        assert!(s.factor(110) < 1e-12);
        let r = Schedule::new(
            ScheduleKind::WarmupCosineWithHardRestarts { cycles: 2.0 },
            0,
            100,
        );
        assert!(close(r.factor(0), 1.0));
        assert!(close(r.factor(25), 0.5));
        // Restart at half way.
        assert!(close(r.factor(50), 1.0));
        assert!(close(r.factor(100), 0.0));
        let c = Schedule::new(ScheduleKind::WarmupConstant, 4, 100);
        assert!(close(c.factor(2), 0.5));
        assert!(close(c.factor(99), 1.0));
        let k = Schedule::new(ScheduleKind::Constant, 4, 100);
        assert!(close(k.factor(0), 1.0));
    }
}
