//! Step caching: skip the transformer blocks whose output barely changes between denoising
//! steps. The first blocks always run; how much their residual changed decides, on the GPU
//! (`ops::skip_decision`), whether the middle blocks run or add the residual they added at
//! their last run. Nothing is read back: the middle blocks are dispatched indirectly from
//! counts the decision writes (`Graph::skippable`). CFG's two halves are one batch, so one
//! decision covers both. Why this rule and these levels: `docs/caching.md`.

use crate::error::{Error, Result};
use crate::model::ptdit::CacheSplit;
use crate::ops::skip_decision::control;
use crate::tensor::HostTensor;

/// What the change is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheRule {
    /// FBCache: the first blocks' residual against the one at the blocks' last run; skip while
    /// the relative change is below the threshold.
    FirstBlock,
    /// TeaCache-style: each step's change against the previous step, added up since the
    /// blocks last ran; skip while the sum is below the threshold.
    Accumulated,
}

/// A step cache's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCache {
    pub rule: CacheRule,
    pub threshold: f32,
    /// The first steps always run every block (the image's layout forms there).
    pub warmup: usize,
    /// The last steps always run every block (fine detail).
    pub final_steps: usize,
    /// The most steps in a row that skip.
    pub max_run: usize,
    /// A skipped step extrapolates the residual linearly from the last two runs (TaylorSeer's
    /// first order) instead of reusing the last one.
    pub extrapolate: bool,
    /// Blocks that always run first and last.
    pub split: CacheSplit,
}

/// The named levels, from the least skipping to the most (`docs/caching.md` has each one's
/// speed and quality on the built-in model, measured by `tools/train/caching.py`).
pub const LEVELS: &[&str] = &["off", "light", "medium", "heavy"];

impl StepCache {
    /// What every level shares, and what a `RULE:THRESHOLD` spec starts from.
    const BASE: StepCache = StepCache {
        rule: CacheRule::FirstBlock,
        threshold: 0.0,
        warmup: 2,
        final_steps: 1,
        max_run: 3,
        extrapolate: true,
        split: CacheSplit { first: 1, last: 0 },
    };

    /// A named level (`off` gives `None`).
    pub fn level(name: &str) -> Result<Option<StepCache>> {
        // Chosen by measurement on the built-in model (docs/caching.md).
        let threshold = match name {
            "off" => return Ok(None),
            "light" => 0.12,
            "medium" => 0.18,
            "heavy" => 0.25,
            _ => {
                return Err(Error::Input(format!(
                    "no step cache level `{name}`: use {}, or RULE:THRESHOLD with RULE \
                     first-block or accumulated",
                    LEVELS.join(", ")
                )))
            }
        };
        Ok(Some(StepCache {
            threshold,
            ..Self::BASE
        }))
    }

    /// A level's name, or `RULE:THRESHOLD[,warmup=N,final=N,max=N,first=N,last=N,order=0|1]` (for
    /// measuring other settings); `off` gives `None`.
    pub fn parse(spec: &str) -> Result<Option<StepCache>> {
        let Some((rule, rest)) = spec.split_once(':') else {
            return Self::level(spec);
        };
        let bad = |why: String| Error::Input(format!("step cache `{spec}`: {why}"));
        let rule = match rule {
            "first-block" => CacheRule::FirstBlock,
            "accumulated" => CacheRule::Accumulated,
            r => return Err(bad(format!("no rule `{r}` (first-block or accumulated)"))),
        };
        let mut parts = rest.split(',');
        let threshold: f32 = parts
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| bad("the threshold is not a number".into()))?;
        if !(threshold.is_finite() && threshold >= 0.0) {
            return Err(bad("the threshold must be a finite number >= 0".into()));
        }
        let mut c = StepCache {
            rule,
            threshold,
            ..Self::BASE
        };
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("`{kv}` is not KEY=N")))?;
            let v: usize = v
                .parse()
                .ok()
                .filter(|v| *v <= 1000)
                .ok_or_else(|| bad(format!("`{kv}` needs a count up to 1000")))?;
            match k {
                "warmup" => c.warmup = v,
                "final" => c.final_steps = v,
                "max" => c.max_run = v,
                "first" => c.split.first = v,
                "last" => c.split.last = v,
                "order" if v <= 1 => c.extrapolate = v == 1,
                _ => return Err(bad(format!("no setting `{k}`"))),
            }
        }
        Ok(Some(c))
    }

    /// Checks the split against a model of `layers` blocks.
    pub fn check(&self, layers: usize) -> Result<()> {
        self.split.check(layers)
    }

    /// The control written before step `index` of `steps`.
    pub fn control(&self, index: usize, steps: usize) -> HostTensor {
        let forced = index < self.warmup || index.saturating_add(self.final_steps) >= steps;
        let mut c = vec![0f32; control::LEN];
        c[control::THRESHOLD] = self.threshold;
        c[control::FORCE] = forced as u8 as f32;
        c[control::MAX_RUN] = self.max_run as f32;
        c[control::ACCUMULATE] = (self.rule == CacheRule::Accumulated) as u8 as f32;
        c[control::EXTRAPOLATE] = self.extrapolate as u8 as f32;
        HostTensor::f32([control::LEN], c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_specs_parse_and_bad_ones_are_named() {
        assert_eq!(StepCache::parse("off").unwrap(), None);
        for l in &LEVELS[1..] {
            assert!(StepCache::parse(l).unwrap().is_some(), "{l}");
        }
        let c = StepCache::parse("accumulated:0.3,warmup=1,last=1")
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.rule, c.threshold, c.warmup, c.split.last),
            (CacheRule::Accumulated, 0.3, 1, 1)
        );
        for bad in [
            "fast",
            "first-block:x",
            "first-block:-1",
            "accumulated:0.1,max",
            "first-block:0.1,zz=1",
            "first-block:NaN",
        ] {
            let e = StepCache::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(bad.split(',').next().unwrap_or(bad)) || e.contains("step cache"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn warmup_and_final_steps_are_forced() {
        let c = StepCache::parse("first-block:0.1,warmup=2,final=1")
            .unwrap()
            .unwrap();
        let forced: Vec<bool> = (0..6)
            .map(|i| c.control(i, 6).as_f32()[control::FORCE] != 0.0)
            .collect();
        assert_eq!(forced, [true, true, false, false, false, true]);
        assert!(c.check(2).is_ok() && c.check(1).is_err());
    }
}
