//! The released sampler: rectified flow (Open-Sora 1.2's `RFlow`), spec §3.3.
//!
//! The model predicts velocity. Timesteps `t_i = (1 − i/N)·1000` are shifted towards noise for
//! large images, `t' = r·τ / (1 + (r − 1)·τ)·1000` with `τ = t/1000` and
//! `r = sqrt(H·W / 512²)` (pixels; for video also `sqrt(max(1, frames // 17 · 5))`). The model sees

//! `t'` rounded to bf16 (the released weights are bf16 and the model casts its timestep to
//! them); the step size uses the unrounded `t'`. All in f32, as the official code computes it.

use serde::{Deserialize, Serialize};

use super::limits::MAX_STEPS;
use crate::error::{config_error, Error, Result};
use crate::model::tables::round_bf16;

#[derive(Clone, Debug, PartialEq)]
pub struct RectifiedFlow {
    pub steps: usize,
    pub cfg: f32,
    pub num_train_steps: usize,
    pub shift_timesteps: bool,
    /// The size (pixels, H·W) at which timesteps are not shifted: 512² for the released model
    /// (Open-Sora's `base_resolution`).
    pub base_resolution: f32,
    /// Extra factor on the shift ratio (Open-Sora's `scale`, 1.0 when released).
    pub transform_scale: f32,
}

/// One step of the schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The shifted timestep `t'` (f32).
    pub t: f32,
    /// What the model is given: `t'` rounded to bf16.
    pub t_model: f32,
    /// `(t'_i − t'_{i+1}) / 1000`, the last step `t'_{N−1} / 1000`.
    pub dt: f32,
}

impl RectifiedFlow {
    /// The released defaults: 30 steps, guidance 4.0, shifted timesteps.
    pub fn released() -> Self {
        RectifiedFlow {
            steps: 30,
            cfg: 4.0,
            num_train_steps: 1000,
            shift_timesteps: true,
            base_resolution: 512.0 * 512.0,
            transform_scale: 1.0,
        }
    }

    /// The shift ratio `r` of this sampler for an output of `height × width` px and `frames`.
    pub fn ratio(&self, height: usize, width: usize, frames: usize) -> f32 {
        // h·w in f64 is exact for any size a request can pass, and rounds to the same f32.
        let space = ((height as f64 * width as f64) as f32 / self.base_resolution).sqrt();
        space * Self::time_ratio(frames) * self.transform_scale
    }

    /// The shift ratio `r` for an output of `height × width` pixels and `frames` frames.
    pub fn shift_ratio(height: usize, width: usize, frames: usize) -> f32 {
        Self::released().ratio(height, width, frames)
    }

    fn time_ratio(frames: usize) -> f32 {
        // Open-Sora's rule gives 0 below 17 frames, which makes t' = 0/0 at the first step;
        // short videos are treated like images in time.
        if frames <= 1 {
            1.0
        } else {
            ((frames / 17 * 5).max(1) as f32).sqrt()
        }
    }

    pub fn schedule(&self, height: usize, width: usize, frames: usize) -> Result<Vec<Step>> {
        if self.steps == 0 || self.num_train_steps == 0 {
            return Err(Error::Input("the sampler needs at least one step".into()));
        }
        if !(self.base_resolution > 0.0 && self.transform_scale > 0.0) {
            return Err(Error::Input(format!(
                "the timestep shift needs a positive base resolution and scale, not {} and {}",
                self.base_resolution, self.transform_scale
            )));
        }
        if !self.cfg.is_finite() {
            return Err(Error::Input(format!(
                "guidance scale {} is not finite",
                self.cfg
            )));
        }
        let n = self.num_train_steps as f32;
        let r = self.ratio(height, width, frames);
        let t: Vec<f32> = (0..self.steps)
            .map(|i| {
                let t = ((1.0 - i as f64 / self.steps as f64) * self.num_train_steps as f64) as f32;
                if !self.shift_timesteps {
                    return t;
                }
                let tau = t / n;
                r * tau / (1.0 + (r - 1.0) * tau) * n
            })
            .collect();
        Ok((0..self.steps)
            .map(|i| {
                let next = if i + 1 < self.steps { t[i + 1] } else { 0.0 };
                Step {
                    t: t[i],
                    t_model: round_bf16(t[i]),
                    dt: (t[i] - next) / n,
                }
            })
            .collect())
    }
}

/// `scheduler/scheduler_config.json` of a model directory: the sampler defaults a model was
/// trained for. Every field is optional; the released model has no such file and gets the
/// released values.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct SchedulerConfig {
    pub num_inference_steps: Option<usize>,
    pub guidance_scale: Option<f32>,
    pub base_resolution: Option<f32>,
    pub transform_scale: Option<f32>,
    /// The default output size `[height, width]` in pixels; with `task`, the only one the
    /// weights were trained for.
    pub sample_size: Option<[usize; 2]>,
    /// What the weights were trained for. A model that says (the built-in ones) is given only
    /// requests of its task, size and frame count; one that does not (the released model, a
    /// converted or random one) is given any request its windows allow.
    pub task: Option<Task>,
    /// Frames (video) or views (multi-view) per sample the weights were trained on; 1 for
    /// images.
    pub num_frames: Option<usize>,
}

/// The three tasks of the Qihoo-T2X family, as a model directory names them.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum Task {
    #[serde(rename = "text-to-image")]
    Image,
    #[serde(rename = "text-to-video")]
    Video,
    #[serde(rename = "text-to-multi-view")]
    MultiView,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Image => "text-to-image",
            Task::Video => "text-to-video",
            Task::MultiView => "text-to-multi-view",
        }
    }
}

impl SchedulerConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let c: SchedulerConfig = serde_json::from_str(text)
            .map_err(|e| config_error(format!("scheduler config: {e}")))?;
        let bad = |why: String| Err(config_error(format!("scheduler config: {why}")));
        let limits = super::limits::check_steps(c.num_inference_steps.unwrap_or(1), MAX_STEPS)
            .and(super::limits::check_cfg(c.guidance_scale.unwrap_or(1.0)));
        if let Err(e) = limits {
            let why = match e {
                Error::Input(why) => why,
                e => e.to_string(),
            };
            return bad(why);
        }
        for (name, v) in [
            ("base_resolution", c.base_resolution),
            ("transform_scale", c.transform_scale),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return bad(format!("{name} must be a positive number"));
            }
        }
        if let Some(n) = c.num_frames {
            if !(1..=super::limits::MAX_FRAMES).contains(&n) {
                return bad(format!(
                    "num_frames {n} must be between 1 and {}",
                    super::limits::MAX_FRAMES
                ));
            }
            if c.task == Some(Task::Image) && n != 1 {
                return bad(format!("num_frames {n}: a text-to-image model has 1"));
            }
        }
        if let Some([h, w]) = c.sample_size {
            let side = 1..=super::limits::MAX_IMAGE_SIDE;
            if !(side.contains(&h) && side.contains(&w)) {
                return bad(format!(
                    "sample_size [{h}, {w}] must be between 1 and {} px a side",
                    side.end()
                ));
            }
        }
        Ok(c)
    }

    /// The frames (or views) a request gets by default: the trained count, else 1.
    pub fn default_frames(&self) -> usize {
        self.num_frames.unwrap_or(1)
    }

    /// What the weights were trained for, in words ("text-to-video, 6 frames at 32×32 px"), if
    /// the model says.
    pub fn trained_for(&self) -> Option<String> {
        let task = self.task?;
        let n = self.default_frames();
        let count = match task {
            Task::Image => String::new(),
            Task::Video => format!(", {n} frame{}", if n == 1 { "" } else { "s" }),
            Task::MultiView => format!(", {n} view{}", if n == 1 { "" } else { "s" }),
        };
        let size = match self.sample_size {
            Some([h, w]) => format!(" at {w}×{h} px"),
            None => String::new(),
        };
        Some(format!("{}{count}{size}", task.name()))
    }

    /// The sampler with this model's defaults.
    pub fn sampler(&self) -> RectifiedFlow {
        let r = RectifiedFlow::released();
        RectifiedFlow {
            steps: self.num_inference_steps.unwrap_or(r.steps),
            cfg: self.guidance_scale.unwrap_or(r.cfg),
            base_resolution: self.base_resolution.unwrap_or(r.base_resolution),
            transform_scale: self.transform_scale.unwrap_or(r.transform_scale),
            ..r
        }
    }
}
